import type { CheckpointOutcome } from "./checkpoint.js";
import { type LaunchOptions, launch } from "./launch.js";

/**
 * Starts the app cold in a private network namespace (so it can run beside a serving
 * instance on the same ports), snapshots it, and stops it: the next launch is warm.
 */
export async function prewarm(options: LaunchOptions): Promise<CheckpointOutcome | undefined> {
  const launched = await launch({ ...options, isRefresh: true, isNetworkIsolated: true, isDetached: false });
  try {
    return await launched.checkpoint;
  } finally {
    launched.kill("SIGTERM");
    const timer = setTimeout(() => launched.kill("SIGKILL"), 5000);
    await launched.exited;
    clearTimeout(timer);
  }
}
