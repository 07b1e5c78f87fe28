import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { invalidOption, WarmstartError } from "../errors.js";
import { pythonScript } from "../exec/command-lines.js";
import { spawnOwned } from "../exec/owned-process.js";
import { NOTIFY_HELPER } from "./notify-helper.js";
import { LineBuffer } from "./output-lines.js";

/** Receives systemd sd_notify messages (READY=1, STATUS=...) from the app. */
export interface NotifyListener {
  /** The socket to give the app as NOTIFY_SOCKET. */
  readonly path: string;
  /** Calls `listener` with each later message's KEY=VALUE fields; returns the unsubscribe function. */
  onMessage(listener: (fields: Record<string, string>) => void): () => void;
  /** Whether any message so far had READY=1, so a wait that starts late still sees it. */
  readonly readyReceived: boolean;
  /** Sends a message of warmstart's own (`READY=1`) to the upstream socket, if there is one. */
  sendUpstream(message: string): void;
  /** Stops the helper (after what was sent upstream is out) and removes the socket. */
  close(): Promise<void>;
}

export interface NotifyListenerOptions {
  /** The Python interpreter to run the helper with. Default "python3" (found on PATH). */
  readonly python?: string;
  /** The socket's file name in the directory. Default "notify.sock". */
  readonly socketName?: string;
  /**
   * Where warmstart's own NOTIFY_SOCKET leads (systemd, with Type=notify): the app's messages
   * are passed on there, but for READY= and MAINPID=, which warmstart, the service's main
   * process (`mainPid`), says itself.
   */
  readonly upstream?: { readonly socket: string; readonly mainPid: number };
}

const SOCKET_NAME = "notify.sock";
/** How long the helper gets to send what it was given before it is stopped. */
const CLOSE_GRACE_MS = 500;
/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

type HelperLine = { bound: true } | { message: Record<string, string> };

/** Binds `<dir>/notify.sock` through a python3 helper and resolves once the socket exists. */
export async function createNotifyListener(
  dir: string,
  options: NotifyListenerOptions = {},
): Promise<NotifyListener> {
  const name = options.socketName ?? SOCKET_NAME;
  const path = join(dir, name);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw invalidOption(
      "the notify socket directory",
      `a path of at most ${MAX_SOCKET_PATH_BYTES - name.length - 1} bytes, so that <dir>/${name} fits in a unix socket address`,
      dir,
    );
  }
  const python = options.python ?? defaultPython();
  const upstream = options.upstream ? [options.upstream.socket, String(options.upstream.mainPid)] : [];
  const owned = spawnOwned(pythonScript(python, NOTIFY_HELPER, [path, ...upstream]), {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const helper = owned.child;
  // Only ever ended, never written: a helper that already left must not raise EPIPE here.
  helper.stdin?.on("error", () => {});
  const stdout = new LineBuffer({ maxRecent: 0 });
  const stderr = new LineBuffer({ maxRecent: 10 });
  helper.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
  helper.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
  const exited = owned.exited.then(() => undefined);

  const listeners = new Set<(fields: Record<string, string>) => void>();
  let readyReceived = false;
  const isBound = new Promise<void>((resolve, reject) => {
    void owned.started.then((started) => {
      if (!started.isStarted) reject(toSpawnError(python, started.error as NodeJS.ErrnoException));
    });
    void exited.then(() =>
      reject(
        new WarmstartError(
          "spawn-failed",
          `The sd_notify helper (${python}) exited before it bound ${path}: ${stderr.recent.at(-1) ?? "no output"}`,
          {
            hint: `Check that ${dir} exists and is writable.`,
            details: { python, path, stderr: stderr.recent },
          },
        ),
      ),
    );
    stdout.onLine((text) => {
      const line = parseHelperLine(text);
      if (line === undefined) return;
      if ("bound" in line) return resolve();
      if (line.message.READY === "1") readyReceived = true;
      for (const listener of [...listeners]) listener(line.message);
    });
  });
  await isBound;

  let closing: Promise<void> | undefined;
  return {
    path,
    onMessage(listener) {
      const entry = (fields: Record<string, string>) => listener(fields);
      listeners.add(entry);
      return () => listeners.delete(entry);
    },
    get readyReceived() {
      return readyReceived;
    },
    sendUpstream(message) {
      if (options.upstream && !closing) helper.stdin?.write(`${JSON.stringify(message)}\n`);
    },
    close() {
      closing ??= (async () => {
        listeners.clear();
        // EOF first: the helper sends what it was given, then leaves; SIGTERM if it lingers.
        helper.stdin?.end();
        const timer = setTimeout(() => owned.kill("SIGTERM"), CLOSE_GRACE_MS);
        await exited;
        clearTimeout(timer);
        await exited;
        // The helper removes it too, unless it was killed before it could.
        await rm(path, { force: true });
      })();
      return closing;
    },
  };
}

/** /usr/bin/python3 when present: a PATH python may be a version-manager shim (pyenv's
 * costs ~250 ms per start here) and every cold launch with a notify probe waits for it. */
function defaultPython(): string {
  return existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

function toSpawnError(python: string, error: NodeJS.ErrnoException): WarmstartError {
  return new WarmstartError(
    "spawn-failed",
    `Could not start ${python} for the notify readiness probe: ${error.message}`,
    {
      hint:
        error.code === "ENOENT"
          ? "Install python3 (apt-get install python3): the notify probe uses it to receive sd_notify messages."
          : `Check that ${python} is an executable Python 3 interpreter.`,
      cause: error,
      details: { python },
    },
  );
}

function parseHelperLine(text: string): HelperLine | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return undefined;
    if ("bound" in value) return { bound: true };
    if ("message" in value && typeof value.message === "object" && value.message !== null) {
      return { message: value.message as Record<string, string> };
    }
  } catch {
    // Not a protocol line (a Python warning would be one); the protocol lines are all JSON.
  }
  return undefined;
}
