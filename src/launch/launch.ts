import { WarmstartError } from "../errors.js";
import { exitCodeOfSignal } from "../exec/owned-process.js";
import type { AppExit } from "./app-process.js";
import { startColdApp, waitForColdApp } from "./cold-path.js";
import type { Fallback } from "./decisions.js";
import type { LaunchContext, LaunchState } from "./launch-context.js";
import type { LaunchStep } from "./launch-events.js";
import type { Launch } from "./launch-handle.js";
import { type LaunchOptions, resolveLaunchOptions } from "./launch-options.js";
import { resolveLaunch } from "./resolve-launch.js";
import { ResourceStack } from "./resource-stack.js";
import { toSignal } from "./stop-on-abort.js";
import { checkRestoredApp, lookUpSnapshot, restoreSnapshot, resumeRestoredApp } from "./warm-path.js";

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
 *       │            │             │  └─► stopped ··· resuming ─┘  (serve's spare: resumed later)
 *       │            │             │               │
 *       │            ▼             ▼               ▼          (any failure: a fallback)
 *       └──────► starting-cold ─► waiting-ready ─► serving ─► checkpointing, beside it
 *                      └─► not-restored  (serve's warm-only launches: serve starts cold apart)
 *
 * Every resource a state acquires (runtime directory, staged images, helpers, daemons) goes
 * on the launch's ResourceStack, released on one path when the app has exited and the
 * checkpoint is settled, when the launch fails, or at process exit.
 */
export async function launch(options: LaunchOptions): Promise<Launch> {
  const opts = resolveLaunchOptions({ ...options, isWarmOnly: false, isLeftStopped: false });
  const context = createContext(opts);
  const outcome = await settle(context, { step: "resolving" });
  if (outcome.kind !== "serving")
    throw new Error(`launch: a launch that may start cold ended ${outcome.kind}`);
  return outcome.launched;
}

/** How one of serve's launches ended. */
export type InstanceOutcome =
  | { readonly kind: "serving"; readonly launched: Launch }
  /** Restored and left stopped (isLeftStopped): resume() continues the launch. */
  | { readonly kind: "stopped"; readonly stopped: StoppedInstance }
  /** No restore: fallback says why (null: there is no snapshot; serve starts cold, apart). */
  | { readonly kind: "not-restored"; readonly fallback: Fallback | null };

/** A restore left stopped: its listening sockets exist and hold connections while it waits. */
export interface StoppedInstance {
  /** The app's PID on the host. */
  readonly pid: number;
  /** Settles if it dies (is killed) before it is resumed. */
  readonly exited: Promise<AppExit>;
  /** SIGCONT, then the after-restore work (warm-path.ts), then serving. */
  resume(): Promise<InstanceOutcome>;
  /** Kills it and releases what its launch holds. */
  discard(): Promise<void>;
}

/**
 * serve's launch: the same state machine, warm only (isWarmOnly), so it ends serving a
 * restored copy, stopped (isLeftStopped: resumed later, through the resuming state), or
 * not-restored with the reason, where `launch` would start the app cold in place.
 */
export async function launchInstance(options: LaunchOptions): Promise<InstanceOutcome> {
  const opts = resolveLaunchOptions({ ...options, isWarmOnly: true });
  return settle(createContext(opts), { step: "resolving" });
}

/** Drives the machine from `state` to an end; what it held is released unless it serves or waits. */
async function settle(context: LaunchContext, state: LaunchState): Promise<InstanceOutcome> {
  try {
    const end = await drive(context, state);
    switch (end.step) {
      case "serving":
        return { kind: "serving", launched: end.launched };
      case "stopped":
        return { kind: "stopped", stopped: toStoppedInstance(context, end) };
      case "not-restored":
        await context.resources.releaseAll();
        return { kind: "not-restored", fallback: end.fallback };
    }
  } catch (error) {
    await context.resources.releaseAll();
    throw error;
  }
}

function toStoppedInstance(
  context: LaunchContext,
  state: Extract<LaunchState, { step: "stopped" }>,
): StoppedInstance {
  const { app } = state.restored;
  const stoppedAtMs = performance.now();
  return {
    pid: app.pid,
    exited: app.exited,
    resume: () => {
      context.skipElapsed(performance.now() - stoppedAtMs);
      return settle(context, { ...state, step: "resuming" });
    },
    async discard() {
      app.kill("SIGKILL");
      await app.exited;
      await context.resources.releaseAll();
    },
  };
}

type EndState = Extract<LaunchState, { step: "serving" | "stopped" | "not-restored" }>;

async function drive(context: LaunchContext, start: LaunchState): Promise<EndState> {
  let state: LaunchState = start;
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
      case "resuming":
        state = resumeRestoredApp(context, state);
        break;
      case "starting-cold":
        // A warm-only launch (serve) ends here: serve starts the app cold apart, not in place.
        state = context.opts.isWarmOnly
          ? { step: "not-restored", fallback: state.plan.fallback }
          : await startColdApp(context, state);
        break;
      case "waiting-ready":
        state = await waitForColdApp(context, state);
        break;
      case "serving":
      case "stopped":
      case "not-restored":
        return state;
      default:
        return unreachable(state);
    }
  }
}

function createContext(opts: LaunchContext["opts"]): LaunchContext {
  let skippedMs = 0;
  const elapsedMs = () => Math.round(performance.now() - opts.startedAtMs - skippedMs);
  return {
    opts,
    resources: new ResourceStack(),
    elapsedMs,
    skipElapsed: (ms) => {
      skippedMs += ms;
    },
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
