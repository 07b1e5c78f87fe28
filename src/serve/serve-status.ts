import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { makeDirectories } from "../cache/cache-dir.js";
import {
  currentOwner,
  formatOwnerTag,
  judgeOwner,
  OWNER_TAG_SOURCE,
  parseOwnerTag,
} from "../cache/owner-stamp.js";
import { replacePrivateFile } from "../cache/private-file.js";

/** What a running `warmstart serve` says about itself, for `warmstart ls`. */
export interface ServeStatus {
  readonly pid: number;
  readonly command: readonly string[];
  readonly cwd: string;
  /** "127.0.0.1:3000", one per front socket. */
  readonly listen: readonly string[];
  readonly startedAt: string;
  /** 0: never stops an instance. */
  readonly idleMs: number;
  readonly maxInstances: number;
  /** The host PIDs of the instances serving now. */
  readonly instances: readonly number[];
  /** The host PID of the stopped spare, if one waits. */
  readonly sparePid: number | null;
  readonly restores: number;
  readonly coldStarts: number;
  readonly updatedAt: string;
}

const SERVE_DIR = "serve";
const NAME = new RegExp(`^(${OWNER_TAG_SOURCE})\\.json$`);

/**
 * One file per serve process in `<cache>/serve/`, named after its owner stamp so that PID
 * reuse cannot make a dead one look alive; written atomically (rename), 0600, in a 0700
 * directory. Removed at exit; one left by a killed serve is skipped, and removed, by `ls`.
 */
export class ServeStatusFile {
  readonly path: string;

  constructor(cacheDir: string) {
    const dir = join(cacheDir, SERVE_DIR);
    const failure = makeDirectories(dir, 0o700);
    if (failure) throw new Error(failure);
    this.path = join(dir, `${formatOwnerTag(currentOwner())}.json`);
  }

  write(status: ServeStatus): void {
    try {
      replacePrivateFile(this.path, `${JSON.stringify(status)}\n`);
    } catch {
      // `ls` shows less; serving goes on.
    }
  }

  remove(): void {
    rmSync(this.path, { force: true });
  }
}

/** The serve processes running on this cache (by their status files). */
export function listServing(cacheDir: string): ServeStatus[] {
  const dir = join(cacheDir, SERVE_DIR);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const serving: ServeStatus[] = [];
  for (const name of names) {
    const tag = NAME.exec(name)?.[1];
    const owner = tag === undefined ? undefined : parseOwnerTag(tag);
    if (!owner) continue;
    const state = judgeOwner(owner);
    if (state === "dead") {
      rmSync(join(dir, name), { force: true });
      continue;
    }
    try {
      serving.push(JSON.parse(readFileSync(join(dir, name), "utf8")) as ServeStatus);
    } catch {
      // Being replaced, or damaged: the next write replaces it.
    }
  }
  return serving.sort((a, b) => a.pid - b.pid);
}
