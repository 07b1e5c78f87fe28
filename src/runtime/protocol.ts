/**
 * The control channel between warmstart and the runtimes inside the app (the injected Node
 * runtime in every Node process, the Java agent in every JVM). No imports: it is bundled into
 * the in-app runtime as well as into the launcher.
 *
 * Two real pipes at fixed fds in every process of the app tree (inherited by children, handed
 * fresh ones on restore with --inherit-fd, as stdio is):
 * - up (app -> warmstart): one line per message, written with a single write(2) of less than
 *   PIPE_BUF bytes, so lines from several processes never interleave;
 * - down (warmstart -> app): one byte per blocked participant. Every participant that acked a
 *   checkpoint blocks in a 1-byte read, so N bytes wake exactly N participants, whichever
 *   process reads which byte: all of one copy get the same verdict.
 * A checkpoint request is SIGURG (ignored by default, so a PID that was reused since it said
 * hello takes no harm).
 */

/** Bump when the messages or the byte verdicts change meaning. 2: the early reseed ("S",
 * "reseeded"). */
export const PROTOCOL_VERSION = 2;
/** The first protocol whose participants understand the early reseed. */
export const EARLY_RESEED_PROTOCOL = 2;

/** `WARMSTART_CONTROL=<version>:<down fd>:<up fd>` in the app's environment. */
export const CONTROL_ENV = "WARMSTART_CONTROL";
/** How long one process's hooks of one phase may take, in ms. */
export const HOOK_TIMEOUT_ENV = "WARMSTART_HOOK_TIMEOUT_MS";
/** The fds of the control pipes in the app: high enough not to take the fds 3, 4... that
 * apps hand their own children, and below 50, where bash puts process substitutions (63,
 * 62, ... downwards: it closes them after the command, whatever was redirected there). */
export const CONTROL_FDS = { down: 40, up: 41 } as const;

export const CHECKPOINT_SIGNAL = "SIGURG";

/**
 * What the blocked participants are told, one byte each. "reseed" comes before "restored" to
 * a copy that waits (serve's spare): the participant reseeds at once, says "reseeded", and
 * blocks for its verdict again; at that one it runs its restore hooks only.
 */
export const VERDICT_BYTES = { saved: "D", cancelled: "C", restored: "R", reseed: "S" } as const;
export type DownByte = keyof typeof VERDICT_BYTES;
export type Verdict = Exclude<DownByte, "reseed">;

export function verdictOf(byte: string): DownByte | undefined {
  for (const [verdict, value] of Object.entries(VERDICT_BYTES))
    if (value === byte) return verdict as DownByte;
  return undefined;
}

export type ParticipantKind = "node" | "jvm";

/** One participant's report after its after-hooks (or after failing to run them). */
export interface ResumeReport {
  /** Its generators were reseeded (OpenSSL, Math.random, entropy caches). */
  readonly isReseeded: boolean;
  /** One line per failure: a hook that threw or timed out, a reseed that failed. */
  readonly failures: readonly string[];
  /** Time from the verdict to the end of the reseed, in the app (ms). */
  readonly reseedMs: number;
}

export type UpMessage =
  | {
      readonly type: "hello";
      readonly pid: number;
      readonly kind: ParticipantKind;
      readonly protocol: number;
    }
  | { readonly type: "checkpoint-ready"; readonly pid: number }
  | { readonly type: "checkpoint-failed"; readonly pid: number; readonly detail: string }
  /** Paths whose absence decided what the process loaded (a nearer node_modules/<name> that
   * did not exist): inputs that must still be absent for a snapshot to be valid. */
  | { readonly type: "absent"; readonly pid: number; readonly paths: readonly string[] }
  | {
      readonly type: "resumed";
      readonly pid: number;
      readonly verdict: Verdict;
      readonly report: ResumeReport;
    }
  /** After "reseed": the reseed's outcome (its failures are the reseed's only). */
  | { readonly type: "reseeded"; readonly pid: number; readonly report: ResumeReport };

export function formatUpMessage(message: UpMessage): string {
  switch (message.type) {
    case "hello":
      return `hello ${message.pid} ${message.kind} ${message.protocol}\n`;
    case "checkpoint-ready":
      return `checkpoint-ready ${message.pid}\n`;
    case "checkpoint-failed":
      return `checkpoint-failed ${message.pid} ${JSON.stringify(clip(message.detail))}\n`;
    case "absent":
      return `absent ${message.pid} ${JSON.stringify(message.paths)}\n`;
    case "resumed":
      return `resumed ${message.pid} ${message.verdict} ${formatReport(message.report)}\n`;
    case "reseeded":
      return `reseeded ${message.pid} ${formatReport(message.report)}\n`;
  }
}

function formatReport(report: ResumeReport): string {
  return JSON.stringify({ ...report, failures: report.failures.map(clip) });
}

function parseReport(text: string): ResumeReport {
  const report = JSON.parse(text) as Partial<ResumeReport>;
  return {
    isReseeded: report.isReseeded === true,
    failures: Array.isArray(report.failures) ? report.failures.map(String) : [],
    reseedMs: Number(report.reseedMs ?? 0),
  };
}

/** A line must stay below PIPE_BUF (4096) to be written atomically: senders split longer
 * lists of paths into messages of at most this many bytes. */
export const MAX_PATHS_BYTES = 3500;

/** A line must stay below PIPE_BUF (4096) to be written atomically. */
function clip(text: string): string {
  return text.length > 600 ? `${text.slice(0, 600)}...` : text;
}

export function parseUpMessage(line: string): UpMessage | undefined {
  const match = /^(\S+) (\d+)(?: (.*))?$/.exec(line);
  if (!match) return undefined;
  const [, type, pidText, rest = ""] = match;
  const pid = Number(pidText);
  try {
    switch (type) {
      case "hello": {
        const [kind, protocol] = rest.split(" ");
        if (kind !== "node" && kind !== "jvm") return undefined;
        return { type, pid, kind, protocol: Number(protocol) };
      }
      case "checkpoint-ready":
        return { type, pid };
      case "checkpoint-failed":
        return { type, pid, detail: String(JSON.parse(rest)) };
      case "absent": {
        const paths: unknown = JSON.parse(rest);
        return Array.isArray(paths) ? { type, pid, paths: paths.map(String) } : undefined;
      }
      case "resumed": {
        const space = rest.indexOf(" ");
        const verdict = rest.slice(0, space);
        if (verdict !== "saved" && verdict !== "cancelled" && verdict !== "restored") return undefined;
        return { type, pid, verdict, report: parseReport(rest.slice(space + 1)) };
      }
      case "reseeded":
        return { type, pid, report: parseReport(rest) };
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}
