import { createHash } from "node:crypto";
import { readFileSync, readlinkSync } from "node:fs";

/**
 * Who owns a lock, a pending dump or a runtime directory, in a form PID reuse cannot fool.
 * A PID alone is not enough: in containers PIDs repeat (warmstart is often PID 1 in each), so
 * a leftover lock naming PID 1 would look held by the next warmstart itself. The process's
 * start time (clock ticks since boot, /proc/<pid>/stat field 22) tells a reused PID apart,
 * the boot id a reboot, and the PID namespace whether this process can see the owner at all.
 *
 * It is written as a tag that fits in a file name, so a pending directory says who owns it
 * in the same mkdir that creates it: `b<boot>n<pid namespace inode>p<pid>t<start ticks>`.
 */
export interface OwnerStamp {
  readonly pid: number;
  readonly startTicks: number;
  /** The first 8 hex digits of sha256(boot_id). */
  readonly boot: string;
  /** The inode of the PID namespace the PID is counted in. */
  readonly pidNamespace: number;
}

/** "unknown": the owner lives in another PID namespace of this boot (another container
 * sharing the cache); its PID means nothing here, so callers judge by age instead. */
export type OwnerState = "alive" | "dead" | "unknown";

const TAG = /^b([0-9a-f]{8})n(\d+)p(\d+)t(\d+)$/;
/** A tag inside a longer name (`.pending-<key>-<tag>-<random>`). */
export const OWNER_TAG_SOURCE = "b[0-9a-f]{8}n\\d+p\\d+t\\d+";

let self: OwnerStamp | undefined;

/** This process's stamp. */
export function currentOwner(): OwnerStamp {
  self ??= ownerOf(process.pid) ?? { pid: process.pid, startTicks: 0, boot: readBoot(), pidNamespace: 0 };
  return self;
}

/** The stamp of a live process of this PID namespace; undefined when it is gone. */
export function ownerOf(pid: number): OwnerStamp | undefined {
  const startTicks = readStartTicks(pid);
  if (startTicks === undefined) return undefined;
  return { pid, startTicks, boot: readBoot(), pidNamespace: readOwnPidNamespace() };
}

export function formatOwnerTag(stamp: OwnerStamp): string {
  return `b${stamp.boot}n${stamp.pidNamespace}p${stamp.pid}t${stamp.startTicks}`;
}

export function parseOwnerTag(text: string): OwnerStamp | undefined {
  const match = TAG.exec(text.trim());
  if (!match) return undefined;
  const [, boot = "", ns, pid, ticks] = match;
  return { boot, pidNamespace: Number(ns), pid: Number(pid), startTicks: Number(ticks) };
}

export function judgeOwner(stamp: OwnerStamp): OwnerState {
  if (stamp.boot !== readBoot()) return "dead";
  if (stamp.pidNamespace !== readOwnPidNamespace()) return "unknown";
  return readStartTicks(stamp.pid) === stamp.startTicks ? "alive" : "dead";
}

/**
 * Whether what a stamp owns may be cleared: its owner is dead, or it cannot be judged from
 * here (another PID namespace, an unreadable stamp) and it is older than `maxAgeMs`.
 */
export function isAbandoned(stamp: OwnerStamp | undefined, ageMs: number, maxAgeMs: number): boolean {
  const state = stamp ? judgeOwner(stamp) : "unknown";
  return state === "dead" || (state === "unknown" && ageMs > maxAgeMs);
}

/** Field 22 of /proc/<pid>/stat; the fields after the command name, which may hold spaces
 * and parentheses, are counted from its last ")". A zombie counts as gone. */
function readStartTicks(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // fields[0] is field 3 (the state); field 22 is fields[19].
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return undefined;
  const ticks = Number(fields[19]);
  return Number.isSafeInteger(ticks) ? ticks : undefined;
}

let boot: string | undefined;

function readBoot(): string {
  if (boot === undefined) {
    let id = "";
    try {
      id = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch {
      // No /proc: every boot looks the same, and judging falls back on start times.
    }
    boot = createHash("sha256").update(id).digest("hex").slice(0, 8);
  }
  return boot;
}

let ownPidNamespace: number | undefined;

function readOwnPidNamespace(): number {
  if (ownPidNamespace === undefined) {
    try {
      ownPidNamespace = Number(/\[(\d+)\]/.exec(readlinkSync("/proc/self/ns/pid"))?.[1] ?? 0);
    } catch {
      ownPidNamespace = 0;
    }
  }
  return ownPidNamespace;
}
