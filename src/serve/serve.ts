import { rmSync } from "node:fs";
import { join } from "node:path";
import { EntryStore, type Manifest } from "../cache/entry-store.js";
import { createRuntimeDir, removeRuntimeDir } from "../cache/runtime-dir.js";
import { findCriu } from "../criu/find-criu.js";
import { WarmstartError } from "../errors.js";
import type { Fallback } from "../launch/decisions.js";
import {
  type InstanceOutcome,
  type Launch,
  type LaunchOptions,
  launchInstance,
  type StoppedInstance,
} from "../launch/launch.js";
import type { LaunchEvent } from "../launch/launch-events.js";
import { prewarm } from "../launch/prewarm.js";
import { readTreeSocketInodes } from "../launch/proc-sockets.js";
import { readConnections } from "./activity.js";
import { faultInMappedFiles } from "./fault-in.js";
import { enableConnectionMigration, Front, type FrontSocket } from "./front.js";
import { type HeldListener, holdListeners, readHeldQueue, releaseListeners } from "./instance-sockets.js";
import { type KeptState, keepInstanceState } from "./keep-state.js";
import type { ListenAddress } from "./listen-address.js";
import { decideScaleUp, isIdle, isSpareWanted, measureQuietMs, retryDelayMs } from "./serve-decisions.js";
import { ServeMetrics } from "./serve-metrics.js";
import { ServeStatusFile } from "./serve-status.js";
import { ReadableWaiter, setReusePort } from "./socket-calls.js";

export interface ServeOptions {
  /** run's options: the command, its probes, the cache. serve makes them warm-only and shared. */
  readonly launch: LaunchOptions;
  /** Where the front listens; ignored when `activated` sockets are given. */
  readonly listen: readonly ListenAddress[];
  /** Sockets systemd passed (socket-activation.ts). */
  readonly activated?: readonly FrontSocket[];
  /** An instance with no traffic for this long is stopped; 0: never. */
  readonly idleMs: number;
  /** Keep one restored instance stopped, resumed on the next connection. */
  readonly isSpare: boolean;
  readonly maxInstances: number;
  /** Checkpoint an idle instance into its own images instead of stopping it. */
  readonly isKeepState: boolean;
  readonly onEvent?: (event: ServeEvent) => void;
  /** Aborting drains: the instances finish what they serve and stop, then serve resolves. */
  readonly signal?: AbortSignal;
}

export type InstanceStart = "restored" | "resumed" | "kept-state" | "cold-then-restored";

export type ServeEvent =
  | { readonly type: "listening"; readonly addresses: readonly string[]; readonly isActivated: boolean }
  | { readonly type: "notice"; readonly message: string }
  | { readonly type: "warning"; readonly message: string }
  | {
      readonly type: "instance-started";
      readonly pid: number;
      readonly how: InstanceStart;
      /** From the first waiting connection (or the decision to add a copy) to serving. */
      readonly startMs: number;
    }
  | { readonly type: "instance-stopped"; readonly pid: number; readonly why: "idle" | "drain" | "kept-state" }
  /** An instance that ended on its own (crashed): the next connection restores another. */
  | { readonly type: "instance-exited"; readonly pid: number; readonly exitCode: number }
  | { readonly type: "spare-ready"; readonly pid: number }
  /** The spare's mapped files are in its page tables: its resume does not fault them in. */
  | { readonly type: "spare-faulted-in"; readonly pid: number; readonly bytes: number; readonly ms: number }
  | { readonly type: "start-failed"; readonly message: string; readonly retryInMs: number }
  | { readonly type: "draining" }
  /** The launch's own events (steps for -v, fallbacks, checkpoints). */
  | { readonly type: "launch"; readonly event: LaunchEvent };

/** The handle of a running serve. */
export interface Serving {
  readonly addresses: readonly string[];
  /** Resolves once serve has drained and let go of everything; rejects, after draining, with
   * a problem no retry fixes (snapshots impossible, the app listening elsewhere). */
  readonly done: Promise<void>;
  /** The Prometheus text of serve's metrics. */
  renderMetrics(): string;
}

interface Instance {
  readonly launched: Launch;
  readonly held: readonly HeldListener[];
  readonly servingSinceMs: number;
  queued: number;
  isStopping: boolean;
  stopReason?: "idle" | "drain" | "kept-state";
}

interface Spare {
  readonly stopped: StoppedInstance;
  readonly held: readonly HeldListener[];
  /** Ends the fault-in of its mapped files (fault-in.ts) once it resumes or goes. */
  readonly faultIn: AbortController;
}

/** How often queues are read (a syscall per listener) and, at most, how often idleness is judged. */
const TICK_MS = 100;
const IDLE_CHECK_MAX_MS = 1000;
/** An instance asked to stop gets this long to finish what it serves, then SIGKILL. */
const STOP_GRACE_MS = 30_000;

/**
 * `warmstart serve`: holds the app's public sockets, restores the app on the first
 * connection, stops it when idle, and keeps at most `maxInstances` copies behind the port.
 *
 *   no instance ──(a connection queues on the front, or on the stopped spare)──► starting
 *   starting ──(restored [or cold in a private network, snapshot, restored])──► serving:
 *        the front stops listening; its queued connections move to the instance (kernel)
 *   serving ──(connections queue on every copy)──► one more copy, up to maxInstances
 *   serving ──(a copy idle)──► the front listens again first, then the copy stops (or is
 *        checkpointed, --keep-state); its queued connections move to the front
 *   any ──(abort)──► draining: the copies stop, serve resolves
 *
 * The front never accepts: connections wait in the kernel's queues and are answered by the
 * app itself, so once an instance serves, serve is not in the path of a single byte.
 */
export async function serve(options: ServeOptions): Promise<Serving> {
  const server = new Server(options);
  await server.start();
  return {
    addresses: server.front.addresses.map((address) => address.text),
    done: server.done,
    renderMetrics: () => server.renderMetrics(),
  };
}

class Server {
  readonly front: Front;
  readonly done: Promise<void>;
  readonly #options: ServeOptions;
  readonly #emit: (event: ServeEvent) => void;
  readonly #waiter = new ReadableWaiter();
  readonly #metrics = new ServeMetrics();
  readonly #instances: Instance[] = [];
  readonly #kept: KeptState[] = [];
  readonly #runtime: ReturnType<typeof createRuntimeDir> | undefined;
  readonly #status: ServeStatusFile | undefined;
  #spare: Spare | undefined;
  #isSpareStarting = false;
  /** The cold start in progress, which every start that needs one waits for. */
  #coldStarting: Promise<void> | undefined;
  #starting = 0;
  #queuedTicks = 0;
  #failuresInARow = 0;
  /** Set when the drain is asked for: no new start begins after it. */
  #isDrainAsked = false;
  /** Set once the drain stops the instances (after one last start for waiting connections). */
  #isDraining = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #lastIdleCheckMs = 0;
  #isIdleCheckRunning = false;
  #keptCount = 0;
  #fatalError: WarmstartError | undefined;
  #monitor: NodeJS.Timeout | undefined;
  #wakeLoop: () => void = () => {};
  #finish: (error: WarmstartError | undefined) => void = () => {};
  readonly #startedAt = new Date().toISOString();

  constructor(options: ServeOptions) {
    this.#options = options;
    this.#emit = options.onEvent ?? (() => {});
    this.front = options.activated ? Front.adopt(options.activated) : Front.open(options.listen);
    this.done = new Promise((resolve, reject) => {
      this.#finish = (error) => (error ? reject(error) : resolve());
    });
    const cacheDir = options.launch.cacheDir;
    try {
      this.#runtime = cacheDir ? createRuntimeDir(cacheDir) : undefined;
      this.#status = cacheDir ? new ServeStatusFile(cacheDir) : undefined;
    } catch {
      // A refused cache: the launch says so; serve runs without ls and --keep-state.
    }
  }

  async start(): Promise<void> {
    const migration = enableConnectionMigration();
    if (migration.error) {
      this.#emit({
        type: "warning",
        message: `cannot turn on net.ipv4.tcp_migrate_req (${migration.error}): connections queued when an instance takes or gives back the port may be reset`,
      });
    } else if (migration.isChanged) {
      this.#emit({
        type: "notice",
        message:
          "turned on net.ipv4.tcp_migrate_req: a listener that stops hands its queued connections to the others on its port",
      });
    }
    this.#emit({
      type: "listening",
      addresses: this.front.addresses.map((address) => address.text),
      isActivated: this.#options.activated !== undefined,
    });
    this.#writeStatus();
    const { signal } = this.#options;
    if (signal?.aborted) {
      void this.#drain();
      return;
    }
    signal?.addEventListener("abort", () => void this.#drain(), { once: true });
    this.#monitor = setInterval(() => this.#tick(), TICK_MS);
    void this.#watch();
    if (this.#options.isSpare) void this.#ensureSpare();
  }

  renderMetrics(): string {
    const queued =
      this.front.readQueued() +
      this.#instances.reduce((sum, instance) => sum + readHeldQueue(instance.held), 0) +
      (this.#spare ? readHeldQueue(this.#spare.held) : 0);
    return this.#metrics.render({
      instances: this.#instances.length,
      spares: this.#spare ? 1 : 0,
      queued,
    });
  }

  // --- waiting for connections ---

  /** Waits for a connection on the front (while it holds the port) or on the stopped spare. */
  async #watch(): Promise<void> {
    while (!this.#isDrainAsked) {
      const spareFds = this.#spare?.held.map((listener) => listener.fd) ?? [];
      const fds = [...this.front.waitFds, ...spareFds];
      if (fds.length === 0 || this.#starting > 0 || this.#retryTimer) {
        await new Promise<void>((resolve) => {
          this.#wakeLoop = resolve;
        });
        continue;
      }
      const ready = await this.#waiter.wait(fds);
      if (ready.length === 0 || this.#isDrainAsked) continue;
      const demandMs = performance.now();
      if (this.#spare && (ready.some((fd) => spareFds.includes(fd)) || this.#instances.length === 0)) {
        await this.#resumeSpare(demandMs);
      } else if (this.front.isHolding) {
        await this.#startInstance(demandMs);
      }
    }
  }

  /** Something the wait depends on changed: the front, the spare, a start that ended. */
  #changed(): void {
    const wake = this.#wakeLoop;
    this.#wakeLoop = () => {};
    wake();
    void this.#waiter.interrupt();
  }

  // --- starting instances ---

  async #startInstance(demandMs: number): Promise<void> {
    this.#starting += 1;
    try {
      const started = await this.#restoreOrColdStart();
      if (started.outcome.kind !== "serving") {
        this.#failed(describeNotRestored(started.outcome));
        return;
      }
      this.#adopt(started.outcome.launched, demandMs, started.how, undefined);
    } catch (error) {
      if (isFatal(error)) this.#fatal(error);
      else this.#failed((error as Error).message);
    } finally {
      this.#starting -= 1;
      this.#changed();
    }
  }

  /** Kept state first, then the shared snapshot; without a usable snapshot, a cold start apart. */
  async #restoreOrColdStart(): Promise<{ outcome: InstanceOutcome; how: InstanceStart }> {
    const kept = this.#kept.shift();
    if (kept) {
      const outcome = await launchInstance({ ...this.#launchOptions(), restoreEntry: kept });
      rmSync(kept.dir, { recursive: true, force: true });
      if (outcome.kind === "serving") return { outcome, how: "kept-state" };
      this.#emit({
        type: "warning",
        message: "the kept state of an idle instance did not restore; restoring the snapshot",
      });
    }
    const outcome = await launchInstance(this.#launchOptions());
    if (outcome.kind !== "not-restored") return { outcome, how: "restored" };
    await this.#coldStart(outcome.fallback);
    return { outcome: await launchInstance(this.#launchOptions()), how: "cold-then-restored" };
  }

  /**
   * No snapshot, or one that failed: the app starts cold in a private network namespace (its
   * ports are free there while the front holds them here), is snapshotted and stopped; the
   * caller restores that snapshot. Connections keep waiting on the front meanwhile.
   */
  #coldStart(fallback: Fallback | null): Promise<void> {
    // One at a time: the spare's and a connection's cold starts, racing for one dump, lost it
    // to each other (lost-race), and serve stopped with the connection reset.
    this.#coldStarting ??= this.#startColdOnce(fallback).finally(() => {
      this.#coldStarting = undefined;
    });
    return this.#coldStarting;
  }

  async #startColdOnce(fallback: Fallback | null): Promise<void> {
    if (fallback && isWithoutSnapshots(fallback)) {
      throw fatal(`serve needs snapshots and cannot take any: ${fallback.message}`);
    }
    this.#metrics.coldStarts += 1;
    const saved = await prewarm({
      ...this.#options.launch,
      startedAtMs: performance.now(),
      onEvent: (event) => this.#emit({ type: "launch", event }),
    });
    // Another process (a `run`, another serve) is taking this snapshot: restore it once it
    // is there; the connections wait on the front meanwhile (#failed retries).
    if (saved && !saved.saved && saved.reason === "lost-race")
      throw new Error(`${saved.holder} is taking the snapshot; restoring it once it is saved`);
    if (!saved?.saved) {
      const why =
        saved && "errors" in saved ? saved.errors.join("; ") : (saved?.reason ?? "no snapshot was taken");
      throw fatal(
        `the app started cold but could not be snapshotted (${why}); serve restores every instance from a snapshot`,
      );
    }
  }

  async #resumeSpare(demandMs: number): Promise<void> {
    const spare = this.#spare;
    if (!spare) return;
    this.#spare = undefined;
    spare.faultIn.abort();
    this.#starting += 1;
    try {
      const outcome = await spare.stopped.resume();
      if (outcome.kind === "serving") {
        this.#metrics.resumes += 1;
        this.#adopt(outcome.launched, demandMs, "resumed", spare.held);
      } else {
        releaseListeners(spare.held);
        this.#emit({ type: "warning", message: `the spare did not resume: ${describeNotRestored(outcome)}` });
      }
    } finally {
      this.#starting -= 1;
      this.#changed();
    }
    if (this.#instances.length === 0 && this.front.isHolding) await this.#startInstance(demandMs);
    void this.#ensureSpare();
  }

  /** A restored copy serves: serve holds its listeners, and the front lets go of the port. */
  #adopt(
    launched: Launch,
    demandMs: number,
    how: InstanceStart,
    alreadyHeld: readonly HeldListener[] | undefined,
  ): void {
    const taken = alreadyHeld
      ? { held: [...alreadyHeld], missing: [] as ListenAddress[], listening: [] }
      : holdListeners(launched.pid, this.front.addresses);
    for (const listener of taken.held) setReusePort(listener.fd);
    if (taken.missing.length > 0) {
      releaseListeners(taken.held);
      launched.kill("SIGKILL");
      throw elsewhere(taken.missing, taken.listening);
    }
    const instance: Instance = {
      launched,
      held: taken.held,
      servingSinceMs: performance.now(),
      queued: 0,
      isStopping: false,
    };
    this.#instances.push(instance);
    this.#failuresInARow = 0;
    if (how !== "resumed") this.#metrics.restores += 1;
    const startMs = performance.now() - demandMs;
    this.#metrics.observeStartSeconds(startMs / 1000);
    void launched.exited.then((exit) => this.#onExit(instance, exit.exitCode));
    // The hand-over: the front's queued connections move to the instance.
    this.front.release();
    this.#emit({ type: "instance-started", pid: launched.pid, how, startMs: Math.round(startMs) });
    this.#writeStatus();
    this.#changed();
  }

  #failed(message: string): void {
    this.#metrics.failures += 1;
    this.#failuresInARow += 1;
    const retryInMs = retryDelayMs(this.#failuresInARow);
    this.#emit({ type: "start-failed", message, retryInMs });
    // The connections wait on the front; the loop tries again after the delay.
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#changed();
    }, retryInMs);
  }

  async #ensureSpare(): Promise<void> {
    const wanted = isSpareWanted({
      isSpareEnabled: this.#options.isSpare,
      hasSpare: this.#spare !== undefined,
      isSpareStarting: this.#isSpareStarting,
      running: this.#instances.length,
      maxInstances: this.#options.maxInstances,
      isDraining: this.#isDrainAsked,
    });
    if (!wanted) return;
    this.#isSpareStarting = true;
    try {
      let outcome = await launchInstance({ ...this.#launchOptions(), isLeftStopped: true });
      if (outcome.kind === "not-restored" && !this.#isDrainAsked) {
        await this.#coldStart(outcome.fallback);
        outcome = await launchInstance({ ...this.#launchOptions(), isLeftStopped: true });
      }
      if (outcome.kind !== "stopped") {
        if (outcome.kind === "serving") outcome.launched.kill("SIGKILL");
        this.#emit({
          type: "warning",
          message: `no spare: ${outcome.kind === "not-restored" ? describeNotRestored(outcome) : "it did not stay stopped"}`,
        });
        return;
      }
      const { stopped } = outcome;
      // SO_REUSEPORT stays off until it is resumed: the kernel then hands a stopped spare every
      // new connection (the newest listener with it off wins), and serve resumes it at once.
      const taken = holdListeners(stopped.pid, this.front.addresses);
      if (taken.missing.length > 0 || this.#isDrainAsked) {
        releaseListeners(taken.held);
        await stopped.discard();
        if (taken.missing.length > 0) throw elsewhere(taken.missing, taken.listening);
        return;
      }
      const spare: Spare = { stopped, held: taken.held, faultIn: new AbortController() };
      this.#spare = spare;
      void stopped.exited.then(() => this.#onSpareExit(spare));
      this.#emit({ type: "spare-ready", pid: stopped.pid });
      void faultInMappedFiles(stopped.pid, spare.faultIn.signal).then((faulted) => {
        if (faulted) this.#emit({ type: "spare-faulted-in", pid: stopped.pid, ...faulted });
      });
      this.#writeStatus();
      this.#changed();
    } catch (error) {
      if (isFatal(error)) this.#fatal(error);
      else this.#emit({ type: "warning", message: `no spare: ${(error as Error).message}` });
    } finally {
      this.#isSpareStarting = false;
    }
  }

  /** A spare that died stopped (killed): its listeners close once no wait uses them. */
  async #onSpareExit(spare: Spare): Promise<void> {
    if (this.#spare !== spare) return;
    this.#spare = undefined;
    spare.faultIn.abort();
    await this.#waiter.interrupt();
    if (this.#instances.length === 0 && !this.#isDraining) this.front.hold();
    releaseListeners(spare.held);
    this.#writeStatus();
    this.#changed();
  }

  // --- watching the instances ---

  #tick(): void {
    if (this.#isDrainAsked) return;
    for (const instance of this.#instances) instance.queued = readHeldQueue(instance.held);
    const serving = this.#instances.filter((instance) => !instance.isStopping);
    const isQueued = serving.length > 0 && serving.every((instance) => instance.queued > 0);
    this.#queuedTicks = isQueued ? this.#queuedTicks + 1 : 0;
    if (
      decideScaleUp({
        running: serving.length,
        starting: this.#starting,
        maxInstances: this.#options.maxInstances,
        queuedTicks: this.#queuedTicks,
      })
    ) {
      this.#queuedTicks = 0;
      if (this.#spare) void this.#resumeSpare(performance.now());
      else void this.#startInstance(performance.now());
    }
    const { idleMs } = this.#options;
    const checkEveryMs = Math.min(IDLE_CHECK_MAX_MS, Math.max(TICK_MS, idleMs / 4));
    if (
      idleMs > 0 &&
      !this.#isIdleCheckRunning &&
      performance.now() - this.#lastIdleCheckMs >= checkEveryMs
    ) {
      this.#lastIdleCheckMs = performance.now();
      this.#isIdleCheckRunning = true;
      void this.#checkIdle().finally(() => {
        this.#isIdleCheckRunning = false;
      });
    }
  }

  async #checkIdle(): Promise<void> {
    const serving = this.#instances.filter((instance) => !instance.isStopping);
    if (serving.length === 0) return;
    const ports = [...new Set(this.front.addresses.map((address) => address.port))];
    const connections = readConnections(ports);
    const nowMs = performance.now();
    for (const instance of serving) {
      const inodes = readTreeSocketInodes(instance.launched.pid);
      const quietMs = measureQuietMs({
        sinceServingMs: nowMs - instance.servingSinceMs,
        queued: instance.queued,
        connections: connections.filter((connection) => inodes.has(connection.inode)),
      });
      if (isIdle(quietMs, this.#options.idleMs) && !this.#isDrainAsked) {
        void this.#stopInstance(instance, this.#options.isKeepState ? "kept-state" : "idle");
      }
    }
  }

  /**
   * Takes the port back first when this is the last copy (the front listens beside it), then
   * stops the copy or checkpoints it. Its listener stays open through serve's duplicate until
   * it has exited, so what queued on it moves to the front then (#onExit), never reset.
   */
  async #stopInstance(instance: Instance, why: "idle" | "drain" | "kept-state"): Promise<void> {
    if (instance.isStopping) return;
    instance.isStopping = true;
    instance.stopReason = why;
    const others = this.#instances.filter((other) => !other.isStopping);
    if (others.length === 0 && !this.#isDraining) this.#hold();
    const { launched } = instance;
    if (why === "kept-state" && this.#runtime) {
      const criu = await findCriu(this.#options.launch.env ?? process.env);
      const entry = await this.#sharedManifest(launched.key);
      if (criu.found && entry) {
        this.#keptCount += 1;
        const kept = await keepInstanceState({
          criuPath: criu.criu.path,
          pid: launched.pid,
          dir: join(this.#runtime.path, `kept-${this.#keptCount}`),
          shared: entry,
        });
        if (kept.isKept) {
          this.#kept.push(kept.kept);
          launched.kill("SIGKILL");
          await launched.exited;
          return;
        }
        this.#emit({
          type: "warning",
          message: `could not keep the idle instance's state (${kept.errors.join("; ")}; CRIU log: ${kept.logPath}); stopping it, the next one restores the snapshot`,
        });
      }
    }
    launched.kill("SIGTERM");
    const escalation = setTimeout(() => launched.kill("SIGKILL"), STOP_GRACE_MS);
    await launched.exited;
    clearTimeout(escalation);
  }

  #hold(): void {
    const errors = this.front.hold();
    if (errors.length > 0) {
      this.#emit({ type: "warning", message: `could not listen again on ${errors.join(", ")}` });
    }
    this.#changed();
  }

  #onExit(instance: Instance, exitCode: number): void {
    const index = this.#instances.indexOf(instance);
    if (index >= 0) this.#instances.splice(index, 1);
    // The front listens before the instance's listener really closes (serve's duplicate).
    if (this.#instances.length === 0 && !this.#isDraining) this.#hold();
    releaseListeners(instance.held);
    const { pid } = instance.launched;
    if (instance.stopReason) this.#emit({ type: "instance-stopped", pid, why: instance.stopReason });
    else this.#emit({ type: "instance-exited", pid, exitCode });
    this.#writeStatus();
    this.#changed();
    void this.#ensureSpare();
  }

  // --- draining ---

  async #drain(): Promise<void> {
    if (this.#isDrainAsked) return;
    this.#isDrainAsked = true;
    this.#emit({ type: "draining" });
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#changed();
    // Connections already waiting are served first: an instance is started for them (once).
    while (this.#starting > 0) await sleep(20);
    if (
      !this.#fatalError &&
      this.front.isHolding &&
      this.front.readQueued() > 0 &&
      this.#instances.length === 0
    ) {
      await this.#startInstance(performance.now());
      clearTimeout(this.#retryTimer);
    }
    this.#isDraining = true;
    clearInterval(this.#monitor);
    this.#changed();
    await this.#waiter.close();
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare) {
      spare.faultIn.abort();
      releaseListeners(spare.held);
      await spare.stopped.discard();
    }
    await Promise.all(this.#instances.map((instance) => this.#stopInstance(instance, "drain")));
    this.front.close();
    this.#status?.remove();
    for (const kept of this.#kept.splice(0)) rmSync(kept.dir, { recursive: true, force: true });
    if (this.#runtime && this.#options.launch.cacheDir)
      removeRuntimeDir(this.#options.launch.cacheDir, this.#runtime.path);
    this.#finish(this.#fatalError);
  }

  /** A problem no retry fixes (no snapshots possible, the wrong --listen): drain, then fail. */
  #fatal(error: WarmstartError): void {
    this.#fatalError ??= error;
    void this.#drain();
  }

  // --- helpers ---

  #launchOptions(): LaunchOptions {
    return {
      ...this.#options.launch,
      portPolicy: "shared",
      isWarmOnly: true,
      startedAtMs: performance.now(),
      onEvent: (event) => this.#emit({ type: "launch", event }),
    };
  }

  /** The manifest of the snapshot the instance came from, which its kept state inherits. */
  async #sharedManifest(key: string | null): Promise<Manifest | undefined> {
    const cacheDir = this.#options.launch.cacheDir;
    if (!cacheDir || !key) return undefined;
    const found = await new EntryStore(cacheDir).lookup(key);
    return found.hit ? found.entry.manifest : undefined;
  }

  #writeStatus(): void {
    this.#status?.write({
      pid: process.pid,
      command: this.#options.launch.command,
      cwd: this.#options.launch.cwd ?? process.cwd(),
      listen: this.front.addresses.map((address) => address.text),
      startedAt: this.#startedAt,
      idleMs: this.#options.idleMs,
      maxInstances: this.#options.maxInstances,
      instances: this.#instances.map((instance) => instance.launched.pid),
      sparePid: this.#spare?.stopped.pid ?? null,
      restores: this.#metrics.restores + this.#metrics.resumes,
      coldStarts: this.#metrics.coldStarts,
      updatedAt: new Date().toISOString(),
    });
  }
}

/** Fallbacks that rule snapshots out: a cold start apart would not help. */
function isWithoutSnapshots(fallback: Fallback): boolean {
  return ["criu-missing", "criu-unusable", "cache-dir-refused", "key-failed", "entry-refused"].includes(
    fallback.reason,
  );
}

function describeNotRestored(outcome: InstanceOutcome): string {
  if (outcome.kind !== "not-restored") return `it ended ${outcome.kind}`;
  return outcome.fallback?.message ?? "there is no snapshot";
}

function isFatal(error: unknown): error is WarmstartError {
  return error instanceof WarmstartError && error.details.isFatal === true;
}

/** The app listens elsewhere than the front: connections could never reach it. */
function elsewhere(missing: readonly ListenAddress[], listening: readonly string[]): WarmstartError {
  const where = listening.length > 0 ? `it listens on ${listening.join(", ")}` : "it listens on no TCP port";
  return fatal(
    `the app does not listen on ${missing.map((address) => address.text).join(", ")}, where serve holds the port (${where}): give --listen the address and port the app listens on${listening.length > 0 ? `, e.g. --listen ${listening[0]}` : ""}`,
  );
}

function fatal(message: string): WarmstartError {
  return new WarmstartError("criu-failed", message, { details: { isFatal: true } });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
