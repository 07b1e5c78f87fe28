import { readSync } from "node:fs";
import { describeErrno, loadLibc as loadLibcOnce } from "../exec/libc.js";

// fanotify(7) through koffi (an FFI package with prebuilt binaries: no compiler at install).
// Only the two calls libc has no Node equivalent for go through it; the events are read
// with fs.readSync on the fanotify fd, and each event's fd is read and closed with fs.
// Loaded on the cold path only (src/exec/libc.ts).

const FAN_CLOEXEC = 0x1;
const FAN_NONBLOCK = 0x2;
const FAN_CLASS_NOTIF = 0x0;
// Root only; warmstart needs CAP_SYS_ADMIN anyway. An overflow is still handled: it means
// no snapshot.
const FAN_UNLIMITED_QUEUE = 0x10;
const FAN_UNLIMITED_MARKS = 0x20;
const O_LARGEFILE = 0o100000;
const O_CLOEXEC = 0o2000000;
const FAN_MARK_ADD = 0x1;
const FAN_MARK_MOUNT = 0x10;
const AT_FDCWD = -100;

export const FAN_MODIFY = 0x2;
export const FAN_CLOSE_WRITE = 0x8;
export const FAN_OPEN = 0x20;
export const FAN_OPEN_EXEC = 0x1000;
export const FAN_Q_OVERFLOW = 0x4000;
export const FAN_ONDIR = 0x40000000;

/** Opens for reading and executing (inputs), writes (outputs), directories (listings). */
export const RECORDED_EVENTS = FAN_OPEN | FAN_OPEN_EXEC | FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ONDIR;

const METADATA_BYTES = 24;

export interface FanotifyEvent {
  readonly mask: number;
  /** An open fd on the file; the reader closes it. -1 for an overflow. */
  readonly fd: number;
  readonly pid: number;
}

export interface Fanotify {
  readonly fd: number;
  /** Marks the mount that `path` is on (FAN_MARK_MOUNT). An errno name when it fails. */
  markMount(path: string, mask: number): string | undefined;
  /** Every event queued now (non-blocking). */
  readEvents(): FanotifyEvent[];
}

export type FanotifyOpened =
  | { readonly isOpen: true; readonly fanotify: Fanotify }
  | { readonly isOpen: false; readonly reason: string };

export async function openFanotify(): Promise<FanotifyOpened> {
  let libc: LibcCalls;
  try {
    libc = await loadLibc();
  } catch (error) {
    return { isOpen: false, reason: `koffi could not reach libc: ${(error as Error).message}` };
  }
  const fd = libc.fanotifyInit(
    FAN_CLOEXEC | FAN_NONBLOCK | FAN_CLASS_NOTIF | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS,
    O_LARGEFILE | O_CLOEXEC,
  );
  if (fd < 0) return { isOpen: false, reason: `fanotify_init failed: ${libc.errnoName()}` };
  const buffer = Buffer.alloc(256 * 1024);
  return {
    isOpen: true,
    fanotify: {
      fd,
      markMount: (path, mask) =>
        libc.fanotifyMark(fd, FAN_MARK_ADD | FAN_MARK_MOUNT, BigInt(mask), AT_FDCWD, path) < 0
          ? libc.errnoName()
          : undefined,
      readEvents: () => {
        const events: FanotifyEvent[] = [];
        for (;;) {
          let length: number;
          try {
            length = readSync(fd, buffer, 0, buffer.length, null);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "EAGAIN") return events;
            throw error;
          }
          for (let offset = 0; offset + METADATA_BYTES <= length; ) {
            const eventBytes = buffer.readUInt32LE(offset);
            events.push({
              mask: Number(buffer.readBigUInt64LE(offset + 8)),
              fd: buffer.readInt32LE(offset + 16),
              pid: buffer.readInt32LE(offset + 20),
            });
            offset += Math.max(eventBytes, METADATA_BYTES);
          }
        }
      },
    },
  };
}

interface LibcCalls {
  fanotifyInit(flags: number, eventFlags: number): number;
  fanotifyMark(fd: number, flags: number, mask: bigint, dirfd: number, path: string): number;
  errnoName(): string;
}

let loaded: LibcCalls | undefined;

async function loadLibc(): Promise<LibcCalls> {
  if (loaded) return loaded;
  const libc = loadLibcOnce();
  const fanotifyInit = libc.func("int fanotify_init(unsigned int flags, unsigned int event_f_flags)");
  const fanotifyMark = libc.func(
    "int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)",
  );
  loaded = {
    fanotifyInit: (flags, eventFlags) => fanotifyInit(flags, eventFlags) as number,
    fanotifyMark: (fd, flags, mask, dirfd, path) => fanotifyMark(fd, flags, mask, dirfd, path) as number,
    errnoName: () => describeErrno(libc),
  };
  return loaded;
}
