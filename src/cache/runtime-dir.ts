import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeDirectories } from "./cache-dir.js";
import {
  currentOwner,
  formatOwnerTag,
  judgeOwner,
  OWNER_TAG_SOURCE,
  type OwnerStamp,
  parseOwnerTag,
} from "./owner-stamp.js";

/**
 * A launch's private files: the staged images of a restore (hard links, so on the cache's
 * filesystem), the notify socket. One directory per launch, made by mkdtemp under
 * `<cache>/run/` and named after its owner (owner-stamp.ts), so no two launches ever share
 * one, PIDs repeating or not, and one whose launcher was killed is found and removed.
 */
export interface RuntimeDir {
  readonly path: string;
  /** Where this launch's NOTIFY_SOCKET goes (see notifySocketPath). */
  readonly notifySocket: string;
}

const RUN = "run";
const NOTIFY = "notify";
/** A file in a runtime directory naming the process that took it over (a lazy-pages daemon
 * that outlives a detached launch still reads the staged images). */
const HANDED_TO = "handed-to";
const NAME = new RegExp(`^(${OWNER_TAG_SOURCE})-[A-Za-z0-9]+$`);

/**
 * Creates this launch's directory. Without a usable cache it goes in the system's temporary
 * directory: never inside a cache directory that was refused, others may be able to write
 * there.
 */
export function createRuntimeDir(cacheDir: string | undefined): RuntimeDir {
  const tag = formatOwnerTag(currentOwner());
  if (cacheDir === undefined) {
    const path = mkdtempSync(join(tmpdir(), `warmstart-${tag}-`));
    return { path, notifySocket: join(path, "notify.sock") };
  }
  for (const dir of [RUN, NOTIFY]) {
    const failure = makeDirectories(join(cacheDir, dir), 0o700);
    if (failure) throw new Error(failure);
  }
  const path = mkdtempSync(join(cacheDir, RUN, `${tag}-`));
  return { path, notifySocket: notifySocketPath(cacheDir, path) };
}

/**
 * The cold app's NOTIFY_SOCKET stays in its image. It lives in `<cache>/notify/`, apart from
 * the runtime directories, so that a restore can mount a tmpfs over that one directory and
 * point the old path at its own socket without hiding its staged images (command-lines.ts).
 */
export function notifySocketPath(cacheDir: string, runtimeDir: string): string {
  return join(cacheDir, NOTIFY, `${runtimeDir.split("/").pop()}.sock`);
}

export function notifySocketDir(cacheDir: string): string {
  return join(cacheDir, NOTIFY);
}

/** The directory now belongs to `owner` too: it is kept while either lives. */
export function handOverRuntimeDir(path: string, owner: OwnerStamp): void {
  try {
    writeFileSync(join(path, HANDED_TO), `${formatOwnerTag(owner)}\n`, { mode: 0o600 });
  } catch {
    // Then it is removed as soon as the launch is judged gone; the daemon fails a page read
    // and the app, which it serves, with it: the same as a daemon killed by the launch.
  }
}

export function removeRuntimeDir(cacheDir: string | undefined, path: string): void {
  rmSync(path, { recursive: true, force: true });
  if (cacheDir !== undefined) rmSync(notifySocketPath(cacheDir, path), { force: true });
}

/**
 * Removes the runtime directories (and notify sockets) of launches that are gone: killed
 * with SIGKILL, or detached lazy restores whose daemon has finished. A directory whose owner
 * lives in another PID namespace is kept: it may be in use, and it holds no snapshot.
 */
export function removeStaleRuntimeDirs(cacheDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(join(cacheDir, RUN));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const path = join(cacheDir, RUN, name);
    const tag = NAME.exec(name)?.[1];
    if (tag === undefined ? !isOld(path) : !isStale(path, tag)) continue;
    removeRuntimeDir(cacheDir, path);
    removed.push(name);
  }
  // Sockets whose directory is gone (a launch killed between the two removals).
  const present = new Set(names.filter((name) => !removed.includes(name)));
  try {
    for (const socket of readdirSync(join(cacheDir, NOTIFY))) {
      if (!present.has(socket.replace(/\.sock$/, "")))
        rmSync(join(cacheDir, NOTIFY, socket), { force: true });
    }
  } catch {
    // No notify directory yet.
  }
  return removed;
}

function isStale(path: string, tag: string): boolean {
  const owners = [parseOwnerTag(tag), readHandedTo(path)].filter((stamp) => stamp !== undefined);
  return owners.every((stamp) => judgeOwner(stamp) === "dead");
}

function readHandedTo(path: string): OwnerStamp | undefined {
  try {
    return parseOwnerTag(readFileSync(join(path, HANDED_TO), "utf8"));
  } catch {
    return undefined;
  }
}

/** Directories named by an older warmstart (`run/<pid>`): kept a day, then cleared. */
function isOld(path: string): boolean {
  try {
    return Date.now() - lstatSync(path).mtimeMs > 24 * 60 * 60_000;
  } catch {
    return false;
  }
}
