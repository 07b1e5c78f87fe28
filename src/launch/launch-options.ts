import { defaultCacheDir } from "../cache/cache-dir.js";
import type { CacheEntry } from "../cache/entry-store.js";
import { invalidOption, WarmstartError } from "../errors.js";
import { type ProbeSpec, parseProbe } from "../readiness/probe-spec.js";
import type { FleetSettings } from "../remote/fleet-settings.js";
import {
  type ResolvedRuntimeOptions,
  type RuntimeOptions,
  resolveRuntimeOptions,
} from "../runtime/runtime-options.js";
import type { OutputSinks } from "./app-process.js";
import type { LaunchEvent } from "./launch-events.js";

export interface LaunchOptions {
  /** The app's command: executable (PATH is searched) and arguments. */
  readonly command: readonly string[];
  /** Readiness probes in CLI syntax (`tcp:3000`, `http://...`, `log:<regex>`, `file:<path>`, `notify`). */
  readonly ready: readonly string[];
  readonly readyTimeoutMs?: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cacheDir?: string;
  /** Ignore the cache for this launch (still snapshots unless `isSnapshotDisabled`). */
  readonly isCold?: boolean;
  /** Never checkpoint this launch. */
  readonly isSnapshotDisabled?: boolean;
  /** Start cold and replace the entry. */
  readonly isRefresh?: boolean;
  /** Extra environment variable names to leave out of the key. */
  readonly envIgnore?: readonly string[];
  /** Globs of the files the app is made of (its code, jar, config): part of the key. */
  readonly inputs?: readonly string[];
  /** Globs of files the app reads that change without mattering (a cache it rebuilds, a
   * timestamp file): never inputs of a snapshot, however the app opened them. */
  readonly inputIgnore?: readonly string[];
  /** Cap on the cache's size; default: 10 GiB or 20% of the free space, whichever is smaller. */
  readonly maxCacheBytes?: number;
  readonly sinks?: OutputSinks;
  readonly onEvent?: (event: LaunchEvent) => void;
  /** performance.now() at which the launch began, for readyMs (default: now). */
  readonly startedAtMs?: number;
  /** Leave the app running when warmstart exits; its output goes straight to our stdout/stderr. */
  readonly isDetached?: boolean;
  /** Restore memory on first touch (CRIU lazy pages) instead of reading it all up front.
   * Default: for images of LAZY_MIN_IMAGE_BYTES or more, where it was measured to win. */
  readonly isLazy?: boolean;
  /** Start cold in a private network namespace (prewarm beside a running instance). */
  readonly isNetworkIsolated?: boolean;
  /** Aborting before the app is ready stops it with the abort reason (a signal name) or SIGTERM. */
  readonly signal?: AbortSignal;
  /** A restore that has not resumed the app after this fails (and the launch starts cold).
   * Default 60 s. */
  readonly restoreTimeoutMs?: number;
  /**
   * "exclusive" (default): a restored copy that would listen beside another process on one
   * of its ports is stopped, as a cold start would fail to bind it. "shared": copies may
   * share ports (CRIU restores listeners with SO_REUSEPORT), for several copies behind one.
   */
  readonly portPolicy?: "exclusive" | "shared";
  /** A remote cache, keys and the fleet secret (src/remote/fleet-settings.ts). */
  readonly fleet?: FleetSettings;
  /** The in-app runtime (fresh randomness in restored copies) and the checkpoint/restore hooks. */
  readonly runtime?: RuntimeOptions;
  /**
   * serve's launches (`launchInstance`): restore, or end with the reason why not; never start
   * cold in place (serve starts cold in a private network, snapshots, then restores). The
   * never-slower rule does not apply, and the probes are not checked again after the restore:
   * serve's front holds the same ports and would answer them.
   */
  readonly isWarmOnly?: boolean;
  /** With isWarmOnly: restore and leave the app stopped until it is resumed (serve --spare). */
  readonly isLeftStopped?: boolean;
  /** With isWarmOnly: restore these images instead of the cache's entry for the key (serve
   * --keep-state's per-instance images). A failure to restore them evicts nothing. */
  readonly restoreEntry?: CacheEntry;
}

/** The options after validation and defaults, frozen. */
export interface ResolvedOptions {
  readonly command: readonly string[];
  readonly probes: readonly ProbeSpec[];
  readonly readyTimeoutMs: number;
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly cacheDir: string;
  readonly isCold: boolean;
  readonly isSnapshotDisabled: boolean;
  readonly isRefresh: boolean;
  readonly isDetached: boolean;
  readonly isNetworkIsolated: boolean;
  readonly isLazy: boolean | undefined;
  readonly envIgnore: ReadonlySet<string>;
  readonly inputs: readonly string[];
  readonly inputIgnore: readonly string[];
  readonly maxCacheBytes: number | undefined;
  readonly sinks: OutputSinks;
  readonly emit: (event: LaunchEvent) => void;
  readonly startedAtMs: number;
  readonly signal: AbortSignal | undefined;
  readonly restoreTimeoutMs: number;
  readonly portPolicy: "exclusive" | "shared";
  readonly fleet: FleetSettings | undefined;
  readonly runtime: ResolvedRuntimeOptions;
  readonly isWarmOnly: boolean;
  readonly isLeftStopped: boolean;
  readonly restoreEntry: CacheEntry | undefined;
}

const DEFAULT_READY_TIMEOUT_MS = 60_000;
const DEFAULT_RESTORE_TIMEOUT_MS = 60_000;

/**
 * Lazy restores pay for a daemon and a fault per page touched; eager ones read the whole
 * image first. Measured here (npm run bench): a 7 MB image restores faster eagerly, a
 * 130 MB one slightly faster lazily (~190 vs ~220 ms), a 350 MB one much faster (~0.6 vs
 * ~0.9 s).
 */
export const LAZY_MIN_IMAGE_BYTES = 100 * 1024 * 1024;

export function resolveLaunchOptions(options: LaunchOptions): Readonly<ResolvedOptions> {
  const cwd = options.cwd ?? process.cwd();
  if (options.ready.length === 0) {
    throw new WarmstartError("invalid-option", "Expected at least one --ready probe, got none.", {
      hint: "warmstart checkpoints the app once it is ready: say how to tell, e.g. --ready tcp:3000, --ready http://127.0.0.1:3000/healthz, --ready 'log:listening', --ready file:/tmp/app.ready or --ready notify",
    });
  }
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  if (!Number.isFinite(readyTimeoutMs) || readyTimeoutMs <= 0) {
    throw invalidOption("--ready-timeout", "a positive number of seconds", readyTimeoutMs / 1000);
  }
  const restoreTimeoutMs = options.restoreTimeoutMs ?? DEFAULT_RESTORE_TIMEOUT_MS;
  if (!Number.isFinite(restoreTimeoutMs) || restoreTimeoutMs <= 0) {
    throw invalidOption("restoreTimeoutMs", "a positive number of milliseconds", restoreTimeoutMs);
  }
  const probes = options.ready.map((text) => parseProbe(text, cwd));
  if (options.isDetached && probes.some((probe) => probe.kind === "log")) {
    throw new WarmstartError("invalid-option", "A log: probe cannot be used with --detach.", {
      hint: "a detached app writes straight to the terminal or file, where warmstart cannot read it; use tcp:, http:, file: or notify",
    });
  }
  if ((options.isLeftStopped || options.restoreEntry) && !options.isWarmOnly) {
    throw new WarmstartError("invalid-option", "isLeftStopped and restoreEntry need isWarmOnly.", {
      hint: "they are serve's: a launch that may start cold in place cannot leave a restore stopped",
    });
  }
  return Object.freeze({
    command: options.command,
    probes,
    readyTimeoutMs,
    cwd,
    env: options.env ?? process.env,
    cacheDir: options.cacheDir ?? defaultCacheDir(options.env ?? process.env),
    isCold: options.isCold ?? false,
    isSnapshotDisabled: options.isSnapshotDisabled ?? false,
    isRefresh: options.isRefresh ?? false,
    isDetached: options.isDetached ?? false,
    isNetworkIsolated: options.isNetworkIsolated ?? false,
    isLazy: options.isLazy,
    envIgnore: new Set(options.envIgnore ?? []),
    inputs: options.inputs ?? [],
    inputIgnore: options.inputIgnore ?? [],
    maxCacheBytes: options.maxCacheBytes,
    sinks: options.sinks ?? { stdout: process.stdout, stderr: process.stderr },
    emit: options.onEvent ?? (() => {}),
    startedAtMs: options.startedAtMs ?? performance.now(),
    signal: options.signal,
    restoreTimeoutMs,
    portPolicy: options.portPolicy ?? "exclusive",
    fleet: options.fleet,
    runtime: resolveRuntimeOptions(options.runtime),
    isWarmOnly: options.isWarmOnly ?? false,
    isLeftStopped: options.isLeftStopped ?? false,
    restoreEntry: options.restoreEntry,
  });
}
