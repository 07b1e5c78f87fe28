import type { CacheEntry, EntryStore } from "../cache/entry-store.js";
import type { FileHashIndex } from "../cache/file-hash.js";
import type { UnfitEntries } from "../cache/find-entry.js";
import type { CacheKeyFields } from "../cache/key.js";
import type { RuntimeDir } from "../cache/runtime-dir.js";
import type { InputRecorder } from "../inputs/recorder.js";
import type { NotifyListener } from "../readiness/notify.js";
import type { ProbeSpec } from "../readiness/probe-spec.js";
import type { AppProcess } from "./app-process.js";
import type { CacheUse, Fallback } from "./decisions.js";
import type { LaunchStep } from "./launch-events.js";
import type { Launch } from "./launch-handle.js";
import type { ResolvedOptions } from "./launch-options.js";
import type { ResolvedCommand } from "./resolve-command.js";
import type { Owned, ResourceStack } from "./resource-stack.js";

/** What every state of one launch shares. */
export interface LaunchContext {
  readonly opts: ResolvedOptions;
  /** Everything the launch owns, released on one path (resource-stack.ts). */
  readonly resources: ResourceStack;
  /** The launch's own time: a restore left stopped (serve's spare) does not count the wait
   * for its resume, or every resumed spare would record a warm launch as slow as its wait. */
  elapsedMs(): number;
  /** Takes `ms` (a wait that is not the launch's) out of elapsedMs from now on. */
  skipElapsed(ms: number): void;
  /** Reports a step (`-v`). */
  step(name: LaunchStep, detail?: string): void;
  /** Reports why the launch is not warm. */
  warn(fallback: Fallback): void;
  /** Throws the "aborted" error when the launch was stopped; called before starting the app. */
  throwIfAborted(): void;
}

/** What resolving established, for every later state. */
export interface Session {
  readonly command: ResolvedCommand;
  readonly runtime: RuntimeDir;
  /** The runtime directory on the resource stack (a detached lazy restore hands it over). */
  readonly runtimeOwned: Owned;
  /** Undefined when this launch takes no snapshot and restores none: no usable CRIU, a
   * refused cache directory, a key that could not be computed. */
  readonly cache: UsableCache | undefined;
}

export interface UsableCache {
  readonly dir: string;
  readonly store: EntryStore;
  readonly key: string;
  readonly fields: CacheKeyFields;
  readonly hashes: FileHashIndex;
  readonly criuPath: string;
  /** CRIU as the remote cache describes it (host compatibility). */
  readonly criu: { readonly path: string; readonly version: string };
  /** CRIU logs kept for warnings to point at. */
  readonly logsDir: string;
}

/** Why the launch starts cold and what it may do with the cache. */
export interface ColdPlan {
  readonly fallback: Fallback | null;
  readonly cacheUse: CacheUse;
  readonly isSnapshotWanted: boolean;
  /** A cold launch the never-slower rule chose: its time is a cold sample of this entry. */
  readonly ruleEntryDir?: string;
}

export interface RestoredApp {
  readonly app: AppProcess;
  /** Settles when the staged images are no longer read (at once unless lazy). */
  readonly imagesReleased: Promise<void>;
  readonly lazyPagesPid: number | undefined;
  /** The staged images on the resource stack. */
  readonly imagesOwned: Owned;
  /** Receives the restored app's sd_notify messages, when the launch listens for them. */
  readonly notify: NotifyListener | undefined;
  /** Its runtime has reseeded already (a spare, while it waited): its resume runs the
   * restore hooks only. */
  readonly isReseeded: boolean;
}

export type LaunchState =
  | { readonly step: "resolving" }
  | {
      readonly step: "looking-up";
      readonly session: Session;
      readonly cache: UsableCache;
      /** Entries a restore of this launch found unfit (their inputs changed): looked past. */
      readonly unfit?: UnfitEntries;
    }
  | {
      readonly step: "restoring";
      readonly session: Session;
      readonly cache: UsableCache;
      readonly entry: CacheEntry;
      readonly isLazy: boolean;
      /** The entry's discovered inputs are checked during the restore, which is left
       * stopped until they are known to hold (warm-path.ts). */
      readonly isInputsUnchecked: boolean;
      readonly unfit?: UnfitEntries;
    }
  | {
      readonly step: "checking-ready";
      readonly session: Session;
      readonly cache: UsableCache;
      readonly entry: CacheEntry;
      readonly restored: RestoredApp;
    }
  | { readonly step: "starting-cold"; readonly session: Session; readonly plan: ColdPlan }
  | {
      readonly step: "waiting-ready";
      readonly session: Session;
      readonly plan: ColdPlan;
      readonly app: AppProcess;
      readonly notify: NotifyListener | undefined;
      /** Records what the app reads as it starts, when a snapshot will be taken (src/inputs/). */
      readonly recorder: InputRecorder | undefined;
      /** The launch's probes, `file:` ones knowing what existed before the app started. */
      readonly probes: readonly ProbeSpec[];
    }
  /** A restore left stopped (serve's spare): the launch pauses here until it is resumed. */
  | {
      readonly step: "stopped";
      readonly session: Session;
      readonly cache: UsableCache;
      readonly entry: CacheEntry;
      readonly restored: RestoredApp;
    }
  /** SIGCONT to a stopped restore; the after-restore work follows in checking-ready. */
  | {
      readonly step: "resuming";
      readonly session: Session;
      readonly cache: UsableCache;
      readonly entry: CacheEntry;
      readonly restored: RestoredApp;
    }
  | { readonly step: "serving"; readonly launched: Launch }
  /** A warm-only launch (serve) that did not restore: why (null: there is no snapshot). */
  | { readonly step: "not-restored"; readonly fallback: Fallback | null };

/** The cold plan of a launch that found no snapshot to restore, for a reason of its own. */
export function coldPlanFor(session: Session, fallback: Fallback | null, cacheUse: CacheUse): LaunchState {
  return { step: "starting-cold", session, plan: { fallback, cacheUse, isSnapshotWanted: true } };
}
