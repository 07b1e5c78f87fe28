import type { Registry, RestoreInfo } from "../registry.js";

/**
 * Runs the checkpoint hooks, newest first, within one shared timeout. Returns why they
 * failed (a hook threw or the time ran out), or undefined. A failure stops the run: the
 * snapshot is cancelled and the remaining hooks are not called.
 */
export async function runCheckpointHooks(registry: Registry, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (const [index, hook] of [...registry.checkpointHooks].reverse().entries()) {
    const failure = await settleWithin(() => hook(), deadline, timeoutMs);
    if (failure) return `checkpoint hook ${index + 1} (newest first) ${failure}`;
  }
  return undefined;
}

/** Runs the restore hooks, oldest first, within one shared timeout; every failure is kept. */
export async function runRestoreHooks(
  registry: Registry,
  info: RestoreInfo,
  timeoutMs: number,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const failures: string[] = [];
  for (const [index, hook] of [...registry.restoreHooks].entries()) {
    if (Date.now() >= deadline) {
      failures.push(`restore hook ${index + 1} was not called: the hooks' ${timeoutMs} ms were spent`);
      continue;
    }
    const failure = await settleWithin(() => hook(info), deadline, timeoutMs);
    if (failure) failures.push(`restore hook ${index + 1} ${failure}`);
  }
  return failures;
}

async function settleWithin(
  call: () => unknown,
  deadline: number,
  timeoutMs: number,
): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<string>((resolve) => {
    timer = setTimeout(
      () => resolve(`timed out (the hooks have ${timeoutMs} ms)`),
      Math.max(0, deadline - Date.now()),
    );
  });
  try {
    return await Promise.race([
      Promise.resolve()
        .then(call)
        .then(
          () => undefined,
          (error: unknown) => `threw: ${error instanceof Error ? error.message : String(error)}`,
        ),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
