import { readlinkSync } from "node:fs";
import type { ControlStreams } from "../launch/app-process.js";
import { LineBuffer } from "../readiness/output-lines.js";
import {
  CONTROL_FDS,
  type DownByte,
  type ParticipantKind,
  parseUpMessage,
  type UpMessage,
  VERDICT_BYTES,
} from "./protocol.js";

/**
 * The launcher's end of the control channel of one app (cold-started or restored): it reads
 * what the app's runtimes say, remembers who said hello, and writes verdicts.
 */
export class ControlChannel {
  readonly #streams: ControlStreams;
  readonly #participants = new Map<number, ParticipantKind>();
  readonly #protocols = new Map<number, number>();
  readonly #listeners = new Set<(message: UpMessage) => void>();
  readonly #closeListeners = new Set<() => void>();
  readonly #absentPaths = new Set<string>();
  #isClosed = false;

  constructor(streams: ControlStreams) {
    this.#streams = streams;
    const lines = new LineBuffer({ maxRecent: 0 });
    lines.onLine((line) => {
      const message = parseUpMessage(line);
      if (!message) return;
      if (message.type === "hello") {
        this.#participants.set(message.pid, message.kind);
        this.#protocols.set(message.pid, message.protocol);
      }
      if (message.type === "absent") for (const path of message.paths) this.#absentPaths.add(path);
      for (const listener of this.#listeners) listener(message);
    });
    streams.up.on("data", (chunk: Buffer) => lines.push(chunk));
    // The app is gone (or warmstart let go of it): nothing more will come.
    streams.up.on("close", () => {
      this.#isClosed = true;
      for (const listener of this.#closeListeners) listener();
    });
  }

  /** The PIDs (as the app sees them) of every runtime that said hello, and their kind. */
  get participants(): ReadonlyMap<number, ParticipantKind> {
    return this.#participants;
  }

  /** The protocol a participant said hello with (0 if it did not). */
  protocolOf(pid: number): number {
    return this.#protocols.get(pid) ?? 0;
  }

  /** Paths the app's module resolution found absent while it started: inputs too (a nearer
   * node_modules/<name> that appears changes what it loads). */
  get absentPaths(): ReadonlySet<string> {
    return this.#absentPaths;
  }

  /** Calls `listener` for every later message; returns a function that stops it. */
  onMessage(listener: (message: UpMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Wakes `count` blocked participants with the verdict (or tells them to reseed first). */
  writeVerdicts(verdict: DownByte, count: number): void {
    if (count > 0) this.#streams.down.write(VERDICT_BYTES[verdict].repeat(count));
  }

  /** Resolves with the messages `accept` took, once it returns true for `isDone`, or with what
   * came so far at the timeout (isTimedOut) or when the app's end of the channel closes. */
  collect(
    accept: (message: UpMessage) => boolean,
    isDone: (accepted: readonly UpMessage[]) => boolean,
    timeoutMs: number,
  ): Promise<{ readonly messages: readonly UpMessage[]; readonly isTimedOut: boolean }> {
    const messages: UpMessage[] = [];
    return new Promise((resolve) => {
      const finish = (isTimedOut: boolean) => {
        clearTimeout(timer);
        stop();
        this.#closeListeners.delete(onClose);
        resolve({ messages, isTimedOut });
      };
      const stop = this.onMessage((message) => {
        if (!accept(message)) return;
        messages.push(message);
        if (isDone(messages)) finish(false);
      });
      const onClose = () => finish(true);
      this.#closeListeners.add(onClose);
      const timer = setTimeout(() => finish(true), timeoutMs);
      if (isDone(messages) || this.#isClosed) finish(!isDone(messages));
    });
  }
}

/** The app's control pipes as CRIU names them, read from one of its processes. */
export function readControlPipes(pids: readonly number[]): { down: string; up: string } | undefined {
  for (const pid of pids) {
    try {
      const down = readlinkSync(`/proc/${pid}/fd/${CONTROL_FDS.down}`);
      const up = readlinkSync(`/proc/${pid}/fd/${CONTROL_FDS.up}`);
      if (/^pipe:\[\d+\]$/.test(down) && /^pipe:\[\d+\]$/.test(up)) return { down, up };
    } catch {
      // Closed in this process; try the next.
    }
  }
  return undefined;
}
