import { invalidOption } from "../errors.js";
import { type HookSpec, parseHookSpec } from "./external-hooks.js";

/** What a launch may say about the in-app runtime and the checkpoint/restore hooks. */
export interface RuntimeOptions {
  /** Inject warmstart's runtime into the app (default true; `--no-runtime` says false). */
  readonly isEnabled?: boolean;
  /** How long each phase's hooks may take, in one process or for one external hook (default 10 s). */
  readonly hookTimeoutMs?: number;
  /** A command (run with `sh -c`) or an http(s) URL (POSTed to) before each checkpoint. */
  readonly beforeCheckpoint?: string;
  /** A command or an http(s) URL after each restore, before the launch counts as ready. */
  readonly afterRestore?: string;
  /** A failing restore hook makes the launch fall back to a cold start (default: reported only). */
  readonly isStrictHooks?: boolean;
}

export interface ResolvedRuntimeOptions {
  readonly isEnabled: boolean;
  readonly hookTimeoutMs: number;
  readonly beforeCheckpoint: HookSpec | undefined;
  readonly afterRestore: HookSpec | undefined;
  readonly isStrictHooks: boolean;
}

/** As Lambda SnapStart's runtime hooks. */
export const DEFAULT_HOOK_TIMEOUT_MS = 10_000;

export function resolveRuntimeOptions(options: RuntimeOptions = {}): ResolvedRuntimeOptions {
  const hookTimeoutMs = options.hookTimeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
  if (!Number.isFinite(hookTimeoutMs) || hookTimeoutMs <= 0)
    throw invalidOption("--hook-timeout", "a positive number of seconds", hookTimeoutMs / 1000);
  return Object.freeze({
    isEnabled: options.isEnabled ?? true,
    hookTimeoutMs,
    beforeCheckpoint:
      options.beforeCheckpoint === undefined
        ? undefined
        : parseHookSpec(options.beforeCheckpoint, "--before-checkpoint"),
    afterRestore:
      options.afterRestore === undefined ? undefined : parseHookSpec(options.afterRestore, "--after-restore"),
    isStrictHooks: options.isStrictHooks ?? false,
  });
}
