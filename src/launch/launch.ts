import { WarmstartError } from "../errors.js";
import { exitCodeOfSignal } from "../exec/owned-process.js";
import { startColdApp, waitForColdApp } from "./cold-path.js";
import type { Fallback } from "./decisions.js";
import type { LaunchContext, LaunchState } from "./launch-context.js";
import type { LaunchStep } from "./launch-events.js";
import type { Launch } from "./launch-handle.js";
import { type LaunchOptions, resolveLaunchOptions } from "./launch-options.js";
import { resolveLaunch } from "./resolve-launch.js";
import { ResourceStack } from "./resource-stack.js";
import { toSignal } from "./stop-on-abort.js";
import { checkRestoredApp, lookUpSnapshot, restoreSnapshot } from "./warm-path.js";

export type { Launch, LaunchReport } from "./launch-handle.js";
export { LAZY_MIN_IMAGE_BYTES, type LaunchOptions, resolveLaunchOptions } from "./launch-options.js";

/**
 * Launches the app: restores its snapshot when a valid one exists, otherwise starts it cold,
 * waits until it is ready and checkpoints it for next time. Resolves once the app is ready;
 * throws a WarmstartError when the app itself cannot become ready (it would not have
 * started without warmstart either) or when the launch is stopped first. warmstart's own
 * failures never stop the app: each is a fallback to a cold start.
 *
 * One launch is one walk through these states (launch-context.ts types each one's data):
 *
 *   resolving ─► looking-up ─► restoring ─► checking-ready ─► serving
 *       │            │             │               │
 *       │            ▼             ▼               ▼          (any failure: a fallback)
 *       └──────► starting-cold ─► waiting-ready ─► serving ─► checkpointing, beside it
 *
 * Every resource a state acquires (runtime directory, staged images, helpers, daemons) goes
 * on the launch's ResourceStack, released on one path when the app has exited and the
 * checkpoint is settled, when the launch fails, or at process exit.
 */
export async function launch(options: LaunchOptions): Promise<Launch> {
  const opts = resolveLaunchOptions(options);
  const context = createContext(opts);
  try {
    return await drive(context);
  } catch (error) {
    await context.resources.releaseAll();
    throw error;
  }
}

async function drive(context: LaunchContext): Promise<Launch> {
  let state: LaunchState = { step: "resolving" };
  for (;;) {
    switch (state.step) {
      case "resolving":
        state = await resolveLaunch(context);
        break;
      case "looking-up":
        state = await lookUpSnapshot(context, state);
        break;
      case "restoring":
        state = await restoreSnapshot(context, state);
        break;
      case "checking-ready":
        state = await checkRestoredApp(context, state);
        break;
      case "starting-cold":
        state = await startColdApp(context, state);
        break;
      case "waiting-ready":
        state = await waitForColdApp(context, state);
        break;
      case "serving":
        return state.launched;
      default:
        return unreachable(state);
    }
  }
}

function createContext(opts: LaunchContext["opts"]): LaunchContext {
  const elapsedMs = () => Math.round(performance.now() - opts.startedAtMs);
  return {
    opts,
    resources: new ResourceStack(),
    elapsedMs,
    step: (name: LaunchStep, detail?: string) =>
      opts.emit({ type: "step", step: name, atMs: elapsedMs(), ...(detail ? { detail } : {}) }),
    warn: (fallback: Fallback) => opts.emit({ type: "fallback", ...fallback }),
    throwIfAborted: () => {
      const { signal } = opts;
      if (!signal?.aborted) return;
      const name = toSignal(signal.reason);
      throw new WarmstartError("aborted", `warmstart was stopped (${name}) before the app was ready.`, {
        details: { signal: name, exitCode: exitCodeOfSignal(name) },
      });
    },
  };
}

function unreachable(state: never): never {
  throw new Error(`launch: unknown state ${JSON.stringify(state)}`);
}
