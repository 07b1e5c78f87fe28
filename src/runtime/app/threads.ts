import type { BroadcastChannel, Worker } from "node:worker_threads";
import type { Verdict } from "../protocol.js";

/**
 * Worker threads have their own JavaScript realm (their own Math.random, entropy caches and
 * hooks) and their own event loop, which must not serve anything between a restore and its
 * reseed. The main thread's runtime coordinates them: on a checkpoint it asks every worker
 * (over a BroadcastChannel) to run its hooks; each acks, then blocks in Atomics.wait on a
 * word of shared memory until the main thread stores the verdict there. OpenSSL's per-thread
 * generators need nothing: they reseed from the primary once it has been reseeded.
 *
 * node:worker_threads costs 4-14 ms to load: the main thread loads it only once the app has
 * created a worker (and so loaded it already). A worker learns where the shared word is from
 * the main thread's answer to its hello.
 */

function loadWorkerThreads(): typeof import("node:worker_threads") {
  return require("node:worker_threads");
}

/**
 * A worker thread has node:worker_threads loaded before any preload runs (its bootstrap uses
 * it); the main thread has not, unless something loaded it first, in which case it is free to ask.
 */
export function isWorkerThread(): boolean {
  const loaded = (process as { moduleLoadList?: unknown }).moduleLoadList;
  if (Array.isArray(loaded) && !loaded.includes("NativeModule worker_threads")) return false;
  return !loadWorkerThreads().isMainThread;
}

const CHANNEL_NAME = "warmstart.runtime/1";

/** The shared word: generation * 4 + one of these. */
const WORD = { blocking: 0, saved: 1, cancelled: 2, restored: 3 } as const;
const VERDICT_BY_CODE: readonly Verdict[] = ["cancelled", "saved", "cancelled", "restored"];

type ThreadMessage =
  | { readonly type: "hello"; readonly threadId: number }
  | { readonly type: "welcome"; readonly threadId: number; readonly word: SharedArrayBuffer }
  | { readonly type: "exit"; readonly threadId: number }
  | { readonly type: "checkpoint"; readonly generation: number }
  | { readonly type: "ready"; readonly threadId: number; readonly generation: number }
  | {
      readonly type: "failed";
      readonly threadId: number;
      readonly generation: number;
      readonly detail: string;
    }
  | {
      readonly type: "resumed";
      readonly threadId: number;
      readonly generation: number;
      /** False when a restored worker could not reseed: the copy must never serve. */
      readonly isReseeded: boolean;
      readonly failures: readonly string[];
    };

function openChannel(onMessage: (message: ThreadMessage) => void): BroadcastChannel {
  const channel = new (loadWorkerThreads().BroadcastChannel)(CHANNEL_NAME);
  channel.onmessage = (event) => onMessage((event as unknown as { data: ThreadMessage }).data);
  // Never keeps a thread alive.
  (channel as unknown as { unref(): void }).unref();
  return channel;
}

/** Every thread's runtime reports the workers it creates when they exit. */
function reportExit(channel: BroadcastChannel, worker: Worker): void {
  const id = worker.threadId;
  worker.once("exit", () => channel.postMessage({ type: "exit", threadId: id } satisfies ThreadMessage));
}

function reportWorkerExits(channel: BroadcastChannel): void {
  process.on("worker", (worker) => reportExit(channel, worker));
}

/** What each worker answered in the current generation. */
interface Answer {
  prepared?: { readonly failure: string | undefined };
  resumed?: { readonly isReseeded: boolean; readonly failures: readonly string[] };
}

/** The main thread's side. */
export class ThreadCoordinator {
  private readonly word = new Int32Array(new SharedArrayBuffer(4));
  private readonly channel: BroadcastChannel;
  private readonly workers = new Set<number>();
  private generation = 0;
  private isCheckpointing = false;
  private hasJoinedLate = false;
  private answers = new Map<number, Answer>();
  private onChange: (() => void) | undefined;

  /** Made when the app creates its first worker, which is then tracked too. */
  constructor(first: Worker) {
    this.channel = openChannel((message) => this.receive(message));
    reportExit(this.channel, first);
    reportWorkerExits(this.channel);
  }

  private receive(message: ThreadMessage): void {
    if (message.type === "hello") {
      if (!this.workers.has(message.threadId) && this.isCheckpointing) this.hasJoinedLate = true;
      this.workers.add(message.threadId);
      this.channel.postMessage({
        type: "welcome",
        threadId: message.threadId,
        word: this.word.buffer as SharedArrayBuffer,
      } satisfies ThreadMessage);
    } else if (message.type === "exit") {
      this.workers.delete(message.threadId);
    } else if ("generation" in message && "threadId" in message && message.generation === this.generation) {
      const answer = this.answers.get(message.threadId) ?? {};
      if (message.type === "ready") answer.prepared = { failure: undefined };
      if (message.type === "failed") answer.prepared = { failure: message.detail };
      if (message.type === "resumed")
        answer.resumed = { isReseeded: message.isReseeded, failures: message.failures };
      this.answers.set(message.threadId, answer);
    }
    this.onChange?.();
  }

  /** Asks every worker to run its checkpoint hooks and block. Returns why it failed, or
   * undefined when all are blocked. After a failure, release() must still be called. */
  async checkpoint(timeoutMs: number): Promise<string | undefined> {
    this.generation++;
    this.isCheckpointing = true;
    this.hasJoinedLate = false;
    this.answers = new Map();
    Atomics.store(this.word, 0, this.generation * 4 + WORD.blocking);
    if (this.workers.size > 0)
      this.channel.postMessage({ type: "checkpoint", generation: this.generation } satisfies ThreadMessage);
    const failures = await this.collect(timeoutMs, (answer) =>
      answer.prepared ? [answer.prepared.failure ?? ""].filter(Boolean) : undefined,
    );
    if (this.hasJoinedLate) failures.push("a worker thread started during the checkpoint");
    return failures.length > 0 ? failures.join("; ") : undefined;
  }

  /** Wakes the blocked workers with the verdict (synchronously: before any event). */
  release(verdict: Verdict): void {
    this.isCheckpointing = false;
    Atomics.store(this.word, 0, this.generation * 4 + WORD[verdict]);
    Atomics.notify(this.word, 0);
  }

  /** Waits for every worker to report its restore hooks; returns their failures, and whether
   * every worker that answered reseeded (a silent one was blocked, or is gone: it serves
   * nothing unreseeded either way, since its reseed comes before its event loop goes on). */
  async waitResumed(timeoutMs: number): Promise<{ failures: string[]; isReseeded: boolean }> {
    const failures = await this.collect(timeoutMs, (answer) => answer.resumed?.failures);
    const isReseeded = [...this.answers.values()].every((answer) => answer.resumed?.isReseeded !== false);
    return { failures, isReseeded };
  }

  /** Resolves once every live worker has answered (`read` gives its failures), or at the timeout. */
  private collect(
    timeoutMs: number,
    read: (answer: Answer) => readonly string[] | undefined,
  ): Promise<string[]> {
    return new Promise((resolve) => {
      const check = (isTimedOut: boolean) => {
        const failures: string[] = [];
        const silent: number[] = [];
        for (const id of this.workers) {
          const answered = read(this.answers.get(id) ?? {});
          if (answered) failures.push(...answered.map((failure) => `worker ${id}: ${failure}`));
          else silent.push(id);
        }
        if (silent.length > 0 && !isTimedOut) return;
        if (silent.length > 0)
          failures.push(`worker ${silent.join(", ")} did not answer within ${timeoutMs} ms`);
        clearTimeout(timer);
        this.onChange = undefined;
        resolve(failures);
      };
      const timer = setTimeout(() => check(true), timeoutMs);
      this.onChange = () => check(false);
      check(false);
    });
  }
}

export interface WorkerParticipant {
  /** Runs the worker's checkpoint hooks and everything to prepare; returns a failure or undefined. */
  readonly prepare: () => Promise<string | undefined>;
  /** Runs synchronously right after the verdict, before the worker's event loop goes on;
   * returns why a restored worker could not reseed (nothing when it did). */
  readonly resume: (verdict: Verdict) => readonly string[];
  /** Runs the worker's restore hooks; returns their failures. */
  readonly runRestoreHooks: (verdict: Verdict) => Promise<string[]>;
}

/** A worker thread's side. */
export function joinAsWorker(participant: WorkerParticipant): void {
  const { threadId } = loadWorkerThreads();
  let word: Int32Array | undefined;
  const channel = openChannel((message) => {
    if (message.type === "welcome" && message.threadId === threadId && !word) {
      word = new Int32Array(message.word);
      clearInterval(greeting);
    }
    if (message.type === "checkpoint") void onCheckpoint(message.generation);
  });
  reportWorkerExits(channel);
  const post = (message: ThreadMessage) => channel.postMessage(message);
  // Until the main thread answers: its channel may not be open yet when this one starts.
  const greeting = setInterval(() => post({ type: "hello", threadId }), 20);
  greeting.unref();
  const onCheckpoint = async (generation: number) => {
    const failure = word ? await participant.prepare() : "the worker had not joined the main thread yet";
    let verdict: Verdict = "cancelled";
    if (failure) {
      post({ type: "failed", threadId, generation, detail: failure });
    } else {
      post({ type: "ready", threadId, generation });
      const shared = word as Int32Array;
      // Blocks this thread's event loop until the main thread stores the verdict (at once
      // if it already has: a cancelled checkpoint).
      Atomics.wait(shared, 0, generation * 4 + WORD.blocking);
      const value = Atomics.load(shared, 0);
      verdict =
        Math.floor(value / 4) === generation ? (VERDICT_BY_CODE[value & 3] ?? "cancelled") : "cancelled";
      const unreseeded = participant.resume(verdict);
      if (unreseeded.length > 0) {
        // This thread's event loop never runs again: the main thread reports why and ends
        // the copy.
        post({ type: "resumed", threadId, generation, isReseeded: false, failures: [...unreseeded] });
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      }
    }
    const failures = await participant.runRestoreHooks(verdict);
    post({ type: "resumed", threadId, generation, isReseeded: true, failures });
  };
  post({ type: "hello", threadId });
}
