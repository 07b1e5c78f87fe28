/**
 * The runtime warmstart injects into every Node process of the app (NODE_OPTIONS
 * `--require`, so `npm start`, shell wrappers and child processes are covered) and into
 * every worker thread (Node runs --require preloads in workers too). Bundled to CommonJS;
 * no dependencies but koffi's native module, loaded only at checkpoint time.
 *
 * At start-up: Math.random is replaced by a generator this runtime can reseed, the process
 * says hello on the control channel and waits for SIGURG. On SIGURG (a checkpoint): the
 * checkpoint hooks run (newest first), the workers run theirs and block, koffi is loaded,
 * Node's HTTP server code is run once from memory (http-warm-up.ts), the young generation is
 * scavenged, the process acks and blocks its event loop in a 1-byte
 * read on the control pipe. The original reads its verdict ("saved" or "cancelled") once
 * the dump is over; a restored copy reads "restored" from the pipe its launcher gave it,
 * then reseeds OpenSSL, Math.random and Node's entropy caches before its event loop takes
 * any other event (a request waiting on its listening socket included). Then the restore
 * hooks run and the process reports.
 */
import { fstatSync, readSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { bindSocketPair } from "../../exec/socket-pair.js";
import {
  CHECKPOINT_SIGNAL,
  CONTROL_ENV,
  type DownByte,
  formatUpMessage,
  HOOK_TIMEOUT_ENV,
  PROTOCOL_VERSION,
  type ResumeReport,
  type UpMessage,
  VERDICT_BYTES,
  type Verdict,
  verdictOf,
} from "../protocol.js";
import { getRegistry, type Registry } from "../registry.js";
import { recordAbsentModules } from "./absent-modules.js";
import { type Crypto, drainEntropyCaches, loadCrypto } from "./entropy-caches.js";
import { runCheckpointHooks, runRestoreHooks } from "./hooks.js";
import { warmUpHttpServer } from "./http-warm-up.js";
import { installMathRandom, reseedMathRandom } from "./math-random.js";
import { prepareOpenSslReseed, reseedOpenSsl } from "./openssl.js";
import { loadOwnSymbols } from "./own-symbols.js";
import { isWorkerThread, joinAsWorker, ThreadCoordinator } from "./threads.js";
import { scavengeYoungGeneration } from "./young-generation.js";

const DEFAULT_HOOK_TIMEOUT_MS = 10_000;

/** How often the reseed runs before a dump: enough for V8 to have optimized what it calls
 * (the entropy caches' drain alone is 1,154 calls), which one run is not (see rehearseResume). */
const RESEED_REHEARSALS = 10;

interface Control {
  readonly down: number;
  readonly up: number;
  readonly hookTimeoutMs: number;
}

function readControl(env: NodeJS.ProcessEnv): Control | undefined {
  const match = /^(\d+):(\d+):(\d+)$/.exec(env[CONTROL_ENV] ?? "");
  if (!match || Number(match[1]) !== PROTOCOL_VERSION) return undefined;
  const down = Number(match[2]);
  const up = Number(match[3]);
  // A parent may have closed them (Python's subprocess does) or reused the numbers.
  if (!isPipe(down) || !isPipe(up)) return undefined;
  const timeout = Number(env[HOOK_TIMEOUT_ENV]);
  return { down, up, hookTimeoutMs: timeout > 0 ? timeout : DEFAULT_HOOK_TIMEOUT_MS };
}

function isPipe(fd: number): boolean {
  try {
    return fstatSync(fd).isFIFO();
  } catch {
    return false;
  }
}

function send(control: Control, message: UpMessage): void {
  try {
    // One write below PIPE_BUF: atomic among all the processes that share the pipe.
    writeSync(control.up, formatUpMessage(message));
  } catch {
    // warmstart is gone (--detach): nobody is listening.
  }
}

/**
 * Blocks until warmstart says what became of the snapshot. The pipe may be non-blocking (a
 * stream of this process opened it so): then it is polled every millisecond. A restored copy
 * wakes in this loop, so the interval is latency every warm launch pays (it was 5 ms); the
 * CPU cost is nothing while CRIU has the process frozen, which is most of the wait.
 */
function readVerdict(control: Control): DownByte {
  const byte = Buffer.alloc(1);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      if (readSync(control.down, byte, 0, 1, null) === 0) return "cancelled";
      return verdictOf(byte.toString("latin1")) ?? "cancelled";
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") Atomics.wait(sleeper, 0, 0, 1);
      else if (code !== "EINTR") return "cancelled";
    }
  }
}

/** What each realm does around a checkpoint, main thread or worker alike. */
class Realm {
  private crypto: Crypto | undefined;
  private reseed: { isReseeded: boolean; reseedMs: number } | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly hookTimeoutMs: number,
    private readonly isMainThread: boolean,
  ) {}

  async prepare(): Promise<string | undefined> {
    const failure = await runCheckpointHooks(this.registry, this.hookTimeoutMs);
    if (failure) return failure;
    try {
      this.crypto = await loadCrypto();
      if (this.isMainThread) prepareOpenSslReseed(loadOwnSymbols(dirname(__filename)));
    } catch (error) {
      return `warmstart's runtime cannot reseed OpenSSL here: ${(error as Error).message}`;
    }
    this.rehearseResume();
    // A restored copy's first request would otherwise be the first run of Node's HTTP code.
    if (this.isMainThread) await warmUpHttpServer(bindSocketPair(loadOwnSymbols(dirname(__filename))));
    // Last, so that the garbage of the hooks and of the loads above goes too.
    scavengeYoungGeneration();
    return undefined;
  }

  /**
   * Runs what a restored copy runs between its verdict and its report (the reseed, the
   * verdict's decoding, the report's formatting) before the dump, the reseed several times
   * over. V8 compiles a function at its first call and optimizes it after many: a copy that
   * did both after its verdict spent 4-5 ms more there (tiny server, `--log-function-events`
   * listed the runtime's own functions compiled in the copy). Harmless in the original: it
   * draws fresh entropy and formats a message it does not send.
   */
  private rehearseResume(): void {
    for (let round = 0; round < RESEED_REHEARSALS; round++) this.reseedTimed();
    // A first call compiles the whole function: these return at once.
    this.resume("cancelled");
    void this.runRestoreHooks("cancelled", { ...this.registry, restoreHooks: [] });
    for (const byte of Object.values(VERDICT_BYTES)) verdictOf(byte);
    const report = this.report([]);
    formatUpMessage({ type: "resumed", pid: process.pid, verdict: "restored", report });
  }

  /** Synchronous, right after the verdict. OpenSSL is the main thread's to reseed (its
   * primary generator is the process's); each realm has its own Math.random and caches.
   * Returns why a restored realm could not reseed (nothing when it did). */
  resume(verdict: Verdict): readonly string[] {
    if (verdict !== "restored") return [];
    const failures = this.reseedTimed();
    this.registry.restoreCount++;
    return failures;
  }

  /** The reseed, its outcome kept for the report; returns why it failed. */
  private reseedTimed(): string[] {
    // Not performance.now(): Node loads `performance` on first use, and in a restored copy
    // that had not touched it, that first call took 9-11 ms here, on every warm launch.
    const startedNs = process.hrtime.bigint();
    const failures: string[] = [];
    try {
      if (this.isMainThread) reseedOpenSsl();
      if (this.crypto) drainEntropyCaches(this.crypto);
      reseedMathRandom();
    } catch (error) {
      failures.push(`reseeding failed: ${(error as Error).message}`);
    }
    this.reseed = {
      isReseeded: failures.length === 0,
      reseedMs: Number(process.hrtime.bigint() - startedNs) / 1e6,
    };
    return failures;
  }

  /** `registry`: whose hooks run (none, when rehearseResume compiles this). */
  runRestoreHooks(verdict: Verdict, registry = this.registry): Promise<string[]> {
    const info = { outcome: verdict, isRestored: verdict === "restored" };
    return runRestoreHooks(registry, info, this.hookTimeoutMs);
  }

  /** The last reseed's outcome, with `failures`; report() forgets it (the next checkpoint's
   * copy reseeds anew). */
  describeReseed(failures: readonly string[]): ResumeReport {
    return { isReseeded: this.reseed?.isReseeded ?? false, failures, reseedMs: this.reseed?.reseedMs ?? 0 };
  }

  report(failures: readonly string[]): ResumeReport {
    const report = this.describeReseed(failures);
    this.reseed = undefined;
    return report;
  }
}

/**
 * A restored copy that could not reseed (itself, or one of its workers) must never serve: it
 * ends here, once it has said why, rather than let its event loop take a connection that its
 * listener queued before its launcher, told just now, kills it.
 */
function refuseToServe(): never {
  process.kill(process.pid, "SIGKILL");
  // SIGKILL is not delivered before the kill() returns in every case: wait for it.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  throw new Error("unreachable");
}

/**
 * The main thread's verdict, its reseed done before anything else runs (no await from the
 * read to the reseed). A copy that waits (serve's spare) is told "reseed" first: it reseeds
 * and says so at once, then blocks until its launcher wants it ("restored"); its workers, as
 * blocked as it is, reseed at that verdict with their restore hooks.
 */
function receiveVerdict(control: Control, realm: Realm): Verdict {
  const byte = readVerdict(control);
  const verdict: Verdict = byte === "reseed" ? "restored" : byte;
  const unreseeded = realm.resume(verdict);
  if (byte === "reseed") {
    send(control, { type: "reseeded", pid: process.pid, report: realm.describeReseed(unreseeded) });
    // Still no await: the app's event loop never runs again unless reseeded and wanted.
    if (unreseeded.length > 0 || readVerdict(control) !== "restored") refuseToServe();
    return verdict;
  }
  if (unreseeded.length > 0) {
    send(control, { type: "resumed", pid: process.pid, verdict, report: realm.report(unreseeded) });
    refuseToServe();
  }
  return verdict;
}

function startMainThread(control: Control, realm: Realm): void {
  // Until the checkpoint: the snapshot's inputs are sealed by then, and a restored copy's
  // lookups are nobody's business.
  const stopRecording = recordAbsentModules((paths) =>
    send(control, { type: "absent", pid: process.pid, paths }),
  );
  let threads: ThreadCoordinator | undefined;
  process.once("worker", (worker) => {
    threads = new ThreadCoordinator(worker);
  });
  let isBusy = false;
  const onCheckpoint = async () => {
    if (isBusy) return;
    isBusy = true;
    stopRecording();
    try {
      const failure = (await realm.prepare()) ?? (await threads?.checkpoint(control.hookTimeoutMs));
      let verdict: Verdict = "cancelled";
      if (failure) {
        send(control, { type: "checkpoint-failed", pid: process.pid, detail: failure });
      } else {
        send(control, { type: "checkpoint-ready", pid: process.pid });
        verdict = receiveVerdict(control, realm);
      }
      threads?.release(verdict);
      const failures = await realm.runRestoreHooks(verdict);
      const workers = await threads?.waitResumed(control.hookTimeoutMs + 1000);
      failures.push(...(workers?.failures ?? []));
      const report = realm.report(failures);
      const isReseeded = report.isReseeded && (workers?.isReseeded ?? true);
      send(control, { type: "resumed", pid: process.pid, verdict, report: { ...report, isReseeded } });
      if (verdict === "restored" && !isReseeded) refuseToServe();
    } finally {
      isBusy = false;
    }
  };
  process.on(CHECKPOINT_SIGNAL, () => void onCheckpoint());
  send(control, { type: "hello", pid: process.pid, kind: "node", protocol: PROTOCOL_VERSION });
}

function start(): void {
  const control = readControl(process.env);
  if (!control) return;
  const registry = getRegistry();
  if (registry.isManaged) return;
  registry.isManaged = true;
  installMathRandom();
  const isMainThread = !isWorkerThread();
  const realm = new Realm(registry, control.hookTimeoutMs, isMainThread);
  if (isMainThread) startMainThread(control, realm);
  else
    joinAsWorker({
      prepare: () => realm.prepare(),
      resume: (verdict) => realm.resume(verdict),
      runRestoreHooks: (verdict) => realm.runRestoreHooks(verdict),
    });
}

start();
