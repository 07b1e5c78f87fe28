/**
 * The one error type warmstart throws at its API edge. Expected outcomes inside the
 * library (cache miss, restore failed, probe timed out) are values with a `reason`;
 * a WarmstartError is what reaches the user when an outcome ends the launch.
 */
export type ErrorCode =
  | "invalid-option" // a CLI flag, library option or config field has a bad value
  | "invalid-config" // warmstart.config.json / package.json "warmstart" is malformed
  | "criu-missing" // no criu binary found
  | "criu-unusable" // criu found but too old or broken on this kernel
  | "criu-failed" // a criu command failed (dump, restore, check)
  | "readiness-timeout" // the app did not become ready in time
  | "app-exited" // the app exited before it was ready
  | "spawn-failed" // the app's executable could not be started
  | "cache-refused" // a cache directory or entry is unsafe to use
  | "setup-failed" // `warmstart setup` could not fetch, build or install CRIU
  | "not-found" // a cache entry named by the user does not exist
  | "aborted"; // the launch was stopped (a signal) before the app was ready

export interface WarmstartErrorOptions {
  /** What the user can do about it, one sentence. */
  readonly hint?: string;
  readonly cause?: unknown;
  /** Extra data for `--json` output and for tests (log path, probe, exit code...). */
  readonly details?: Readonly<Record<string, unknown>>;
}

export class WarmstartError extends Error {
  override readonly name = "WarmstartError";
  readonly code: ErrorCode;
  /** The message without the hint. */
  readonly shortMessage: string;
  readonly hint: string | undefined;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, shortMessage: string, options: WarmstartErrorOptions = {}) {
    super(options.hint ? `${shortMessage}\n  hint: ${options.hint}` : shortMessage, { cause: options.cause });
    this.code = code;
    this.shortMessage = shortMessage;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }
}

/** Names an option and its bad value, the way every option error in warmstart reads. */
export function invalidOption(option: string, expected: string, got: unknown): WarmstartError {
  return new WarmstartError(
    "invalid-option",
    `Expected ${option} to be ${expected}, got ${formatValue(got)}.`,
    {
      details: { option, got },
    },
  );
}

function formatValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === undefined) return "nothing";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
