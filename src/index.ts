// warmstart's library API. The CLI (cli.ts) is a thin layer over these.
export { type CacheDirOutcome, defaultCacheDir } from "./cache/cache-dir.js";
export type { CacheEntry, LookupOutcome, Manifest } from "./cache/entry-store.js";
export { type CacheKeyFields, IMAGE_FORMAT_VERSION, VOLATILE_ENV } from "./cache/key.js";
export {
  type CriuInstall,
  type FindCriuOutcome,
  findCriu,
  MIN_CRIU_VERSION,
  TESTED_CRIU_SERIES,
} from "./criu/find-criu.js";
export { type DoctorCheck, type DoctorReport, runDoctor } from "./doctor/doctor-checks.js";
export {
  collectFixes,
  explainDumpFailure,
  type FindingKind,
  type PreflightFinding,
  type PreflightFix,
  type PreflightReport,
  runPreflight,
} from "./doctor/preflight.js";
export { type ErrorCode, WarmstartError } from "./errors.js";
export type { AppExit } from "./launch/app-process.js";
export type { CheckpointOutcome } from "./launch/checkpoint.js";
export { type Launch, type LaunchOptions, type LaunchReport, launch } from "./launch/launch.js";
export type { FallbackReason, LaunchEvent, LaunchStep } from "./launch/launch-events.js";
export { prewarm } from "./launch/prewarm.js";
export { type InputWatcher, type WatchEvent, watchInputs } from "./launch/watch-inputs.js";
export { type ProbeSpec, parseProbe } from "./readiness/probe-spec.js";
export { installCriu, type SetupOptions, type SetupOutcome } from "./setup/install-criu.js";
