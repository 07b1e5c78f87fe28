import { mkdirSync, readdirSync, readlinkSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { CacheEntry, Manifest } from "../cache/entry-store.js";
import { hashFileContent } from "../cache/file-hash.js";
import { readCriuErrors } from "../criu/criu-log.js";
import { criuDump, dieWithParent, inPidNamespaceOf } from "../exec/command-lines.js";
import { describeExit, runToCompletion } from "../exec/owned-process.js";
import { readNamespacePids } from "../launch/warm-start.js";

/** A dump of one idle instance (--keep-state): restored instead of the shared snapshot next. */
export type KeptState = CacheEntry;

export type KeepStateOutcome =
  | { readonly isKept: true; readonly kept: KeptState; readonly dumpMs: number }
  | { readonly isKept: false; readonly errors: readonly string[]; readonly logPath: string };

/** A dump of a large heap takes seconds; one that takes this long is stuck. */
const DUMP_TIMEOUT_MS = 5 * 60_000;

/**
 * Checkpoints a restored instance into `dir` (its own images, never the cache's entry); the
 * dumped instance is left stopped, for the caller to kill. The instance lives in a PID namespace of its own: CRIU runs inside it
 * (nsenter into its PID and mount namespaces, what criu-ns does), where the app has the PID
 * its image must hold and /proc is that namespace's. Connections still open are closed, as at
 * every dump (--tcp-close). `shared` is the snapshot it was restored from: the kept state
 * is the same app, so it inherits its description; its PID, pipes and files are its own.
 */
export async function keepInstanceState(options: {
  readonly criuPath: string;
  readonly pid: number;
  readonly dir: string;
  readonly shared: Manifest;
}): Promise<KeepStateOutcome> {
  const startedMs = performance.now();
  const imagesDir = join(options.dir, "images");
  const logPath = join(options.dir, "dump.log");
  rmSync(options.dir, { recursive: true, force: true });
  mkdirSync(imagesDir, { recursive: true, mode: 0o700 });
  const namespacePid = readNamespacePids(options.pid).at(-1);
  const stdio = [0, 1, 2].map((fd) => readLink(`/proc/${options.pid}/fd/${fd}`));
  if (namespacePid === undefined || stdio.some((link) => !/^pipe:\[\d+\]$/.test(link))) {
    return {
      isKept: false,
      errors: [`the instance (pid ${options.pid}) is gone or its stdio is not pipes`],
      logPath,
    };
  }
  const dump = criuDump(options.criuPath, {
    pid: namespacePid,
    imagesDir,
    logFile: logPath,
    logLevel: 4,
    leaveRunning: false,
    // Stopped, not killed: the app's death would end its PID namespace, and CRIU inside it
    // with it. Stopped, it accepts nothing more; its queue stays for the front.
    isLeftStopped: true,
  });
  const exit = await runToCompletion(dieWithParent(inPidNamespaceOf(options.pid, dump)), {
    timeoutMs: DUMP_TIMEOUT_MS,
    killGraceMs: 0,
  });
  if (exit.code !== 0) {
    // A failed dump lets the app go on (CRIU resumes it); the caller stops it.
    const errors = await readCriuErrors(logPath);
    return {
      isKept: false,
      errors: errors.length > 0 ? errors : [exit.stderr.trim() || `criu dump: ${describeExit(exit)}`],
      logPath,
    };
  }
  const files: Record<string, { bytes: number; sha256: string }> = {};
  let imageBytes = 0;
  for (const name of readdirSync(imagesDir)) {
    const path = join(imagesDir, name);
    const bytes = statSync(path).size;
    files[name] = { bytes, sha256: await hashFileContent(path) };
    imageBytes += bytes;
  }
  const dumpMs = Math.round(performance.now() - startedMs);
  // Without the runtime's part: this dump did not go through its checkpoint protocol (no
  // process blocked waiting for a verdict), and a kept state is restored once, by the same
  // instance going on, not copied: there is nothing to reseed.
  const { runtime: _notBlocked, ...shared } = options.shared;
  const manifest: Manifest = {
    ...shared,
    pid: namespacePid,
    stdio,
    files,
    imageBytes,
    createdAt: new Date().toISOString(),
    checkpointMs: dumpMs,
  };
  return { isKept: true, kept: { dir: options.dir, imagesDir, manifest }, dumpMs };
}

function readLink(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return "";
  }
}
