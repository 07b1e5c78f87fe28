import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** The PIDs of a process and all its descendants alive now (threads' children included). */
export function listProcessTree(rootPid: number): number[] {
  const pids: number[] = [];
  const pending = [rootPid];
  const seen = new Set<number>();
  while (pending.length > 0) {
    const pid = pending.pop() ?? 0;
    if (seen.has(pid)) continue;
    seen.add(pid);
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // Gone meanwhile.
    }
    pids.push(pid);
    for (const tid of tids) {
      try {
        const children = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
        if (children) pending.push(...children.split(/\s+/).map(Number));
      } catch {
        // The thread ended meanwhile.
      }
    }
  }
  return pids;
}

export interface OpenFile {
  readonly path: string;
  /** Opened for writing or appending (O_WRONLY, O_RDWR): an output. */
  readonly isWritable: boolean;
}

const O_ACCMODE = 0o3;

/** The files a process has open now, with their access mode from /proc/<pid>/fdinfo. */
export function listOpenFiles(pid: number): OpenFile[] {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const files: OpenFile[] = [];
  for (const fd of fds) {
    try {
      const path = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (!path.startsWith("/")) continue; // pipes, sockets, anon inodes
      const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"))?.[1];
      files.push({ path, isWritable: flags === undefined || (Number.parseInt(flags, 8) & O_ACCMODE) !== 0 });
    } catch {
      // Closed meanwhile.
    }
  }
  return files;
}

/** Every file a process maps (its executable, shared libraries, mapped data). */
export function listMappedFiles(pid: number): string[] {
  let maps: string;
  try {
    maps = readFileSync(`/proc/${pid}/maps`, "utf8");
  } catch {
    return [];
  }
  const paths = new Set<string>();
  for (const line of maps.split("\n")) {
    // address perms offset dev inode path: the path is whatever follows the fifth column.
    const path = /^\S+ \S+ \S+ \S+ \d+\s+(\/.*)$/.exec(line)?.[1];
    if (path) paths.add(path);
  }
  return [...paths];
}
