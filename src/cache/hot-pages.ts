import { lstatSync, readFileSync, type Stats } from "node:fs";
import { join } from "node:path";
import { makePagesEager, type PageRun } from "../criu/pagemap-image.js";
import { describeUnsafePath, describeUnsafeStat } from "./cache-dir.js";
import { replacePrivateFile } from "./private-file.js";
import { readOwnedJson } from "./read-owned-json.js";

/**
 * The pages an entry's app touched first after a lazy restore, restored up front next time.
 *
 * A lazy restore leaves the app's memory to `criu lazy-pages`, which brings each page the
 * app touches in one userfaultfd round trip; the pages the runtime's handshake and the first
 * request touch were hundreds of round trips on the way to the first answer (node-large:
 * 550-650 faults; the reseed took 9 ms instead of 0.6, the first request 7 ms instead of 2).
 * The first lazy restore of an entry learns them from the daemon's faults, and warmstart
 * keeps, per process, a copy of the entry's pagemap in which those pages are not lazy
 * (src/criu/pagemap-image.ts): later lazy restores stage that copy instead of the entry's,
 * and CRIU reads those pages into place before the app runs. The copy is made once, when the
 * pages are learned: rewriting the pagemap on each restore cost a fresh process 7-14 ms.
 *
 * A copy is used only while the entry's pagemap is the very file it was made from (same
 * inode, size and mtime; the learning restore's staged link is that file): an entry replaced
 * meanwhile never gets another image's layout. Its pages still come from the entry's pages
 * image. A missing, damaged or foreign hint leaves a restore as lazy as it was.
 */
export const HOT_PAGES_FILE = "hot-pages.json";

/** At most this many pages (64 MiB) per entry: a start that touched more (a full GC) is
 * better served lazily than read up front. */
export const MAX_HOT_PAGES = 16_384;

/** A process's pagemap with its hot pages made eager, beside the entry's manifest. */
export interface HotPagemap {
  /** The image file it stands in for (pagemap-<pid>.img). */
  readonly name: string;
  readonly path: string;
  readonly eagerPages: number;
}

/** Not an input's FileStamp: its ctime moves whenever a restore links or unlinks the file. */
interface FileIdentity {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

interface HotPagesFile {
  readonly version: 1;
  /** PID in the images -> the pagemap the copy was made from, and what the copy makes eager. */
  readonly processes: Readonly<
    Record<string, { readonly pagemap: FileIdentity; readonly eagerPages: number }>
  >;
}

function pagemapName(pid: number): string {
  return `pagemap-${pid}.img`;
}

function hotPagemapName(pid: number): string {
  return `hot-pagemap-${pid}.img`;
}

function identityOf(stat: Stats): FileIdentity {
  return { ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs };
}

function isSameFile(stat: Stats, identity: FileIdentity): boolean {
  return stat.ino === identity.ino && stat.size === identity.size && stat.mtimeMs === identity.mtimeMs;
}

/** What the entry's first lazy restore learned, as far as it still holds. */
export interface HotPages {
  /** A lazy restore of this entry has learned (even if no page was worth keeping): later
   * ones need not log every fault again. */
  readonly isLearned: boolean;
  /** Regular files of ours that nobody else can read or write, made from the pagemaps the
   * entry has now. */
  readonly pagemaps: readonly HotPagemap[];
}

export function findHotPages(entryDir: string, imagesDir: string): HotPages {
  const parsed = readOwnedJson(join(entryDir, HOT_PAGES_FILE)) as Partial<HotPagesFile> | undefined;
  if (parsed?.version !== 1 || typeof parsed.processes !== "object" || parsed.processes === null)
    return { isLearned: false, pagemaps: [] };
  const found: HotPagemap[] = [];
  for (const [key, record] of Object.entries(parsed.processes)) {
    const pid = Number(key);
    const { pagemap, eagerPages } = record ?? {};
    if (!/^\d+$/.test(key) || !pagemap || !Number.isSafeInteger(eagerPages)) continue;
    const path = join(entryDir, hotPagemapName(pid));
    let original: Stats;
    try {
      original = lstatSync(join(imagesDir, pagemapName(pid)));
    } catch {
      continue;
    }
    if (!original.isFile() || !isSameFile(original, pagemap)) continue;
    if (describeUnsafePath(path, "file", 0o077)) continue;
    found.push({ name: pagemapName(pid), path, eagerPages: eagerPages ?? 0 });
  }
  return { isLearned: true, pagemaps: found };
}

/**
 * After a learning restore: for each process, the pages it faulted on (in the order of the
 * faults, the first MAX_HOT_PAGES of them all), and a copy of its pagemap with those pages
 * eager, made from the learning restore's staged link; and the record that the entry has
 * learned, even when no page was kept (nothing faulted before the background copy got there).
 * Nothing is kept unless the entry still holds the images that restore staged. Best effort,
 * as the entry's stats are: the entry may be gone by now, and a lost hint only costs the next
 * restore its faults. Returns how many pages the copies make eager.
 */
export function keepHotPages(
  entryDir: string,
  imagesDir: string,
  stagedDir: string,
  faults: ReadonlyMap<number, readonly number[]>,
): number {
  // Every image is staged as a hard link of the entry's file (a hot pagemap aside, and this
  // restore had none): CRIU's inventory image is in every dump.
  if (!isSameInode(join(stagedDir, INVENTORY_IMAGE), join(imagesDir, INVENTORY_IMAGE))) return 0;
  const processes: Record<string, HotPagesFile["processes"][string]> = {};
  let budget = MAX_HOT_PAGES;
  let kept = 0;
  for (const [pid, pages] of faults) {
    const chosen = [...new Set(pages)].slice(0, budget);
    budget -= chosen.length;
    const staged = join(stagedDir, pagemapName(pid));
    let stat: Stats;
    let image: Buffer;
    try {
      stat = lstatSync(staged);
      if (describeUnsafeStat(staged, stat, "file", 0o077)) continue;
      image = readFileSync(staged);
    } catch {
      continue;
    }
    const eager = makePagesEager(image, toRuns(chosen));
    if (!eager || !writePrivately(join(entryDir, hotPagemapName(pid)), eager.image)) continue;
    processes[String(pid)] = { pagemap: identityOf(stat), eagerPages: eager.eagerPages };
    kept += eager.eagerPages;
  }
  const file: HotPagesFile = { version: 1, processes };
  return writePrivately(join(entryDir, HOT_PAGES_FILE), `${JSON.stringify(file)}\n`) ? kept : 0;
}

const INVENTORY_IMAGE = "inventory.img";

function isSameInode(a: string, b: string): boolean {
  try {
    const first = lstatSync(a);
    const second = lstatSync(b);
    return first.isFile() && first.ino === second.ino && first.dev === second.dev;
  } catch {
    return false;
  }
}

function toRuns(pages: readonly number[]): PageRun[] {
  const runs: { first: number; count: number }[] = [];
  for (const page of [...pages].sort((a, b) => a - b)) {
    const last = runs.at(-1);
    if (last && last.first + last.count === page) last.count++;
    else runs.push({ first: page, count: 1 });
  }
  return runs;
}

/** Best effort, as the rest of the hint: false when it could not be written. */
function writePrivately(path: string, content: string | Buffer): boolean {
  try {
    replacePrivateFile(path, content);
    return true;
  } catch {
    return false;
  }
}
