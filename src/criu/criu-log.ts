import { readFile } from "node:fs/promises";

// Harmless lines that look like errors; quoting them would point users at the wrong line.
// The first is printed on every call in this sandbox (no CAP_SYS_RESOURCE to raise the fd limit).
// nftables' message when a restore removes a network-lock table that a dump without
// established connections never made: printed on successful restores of images dumped with
// --network-lock nftables (warmstart's flag before it dumped with skip).
const BENIGN = [/rlimit: Can't setup RLIMIT_NOFILE/, /Could not process rule: No such file or directory/];

/**
 * The lines of a CRIU log that explain a failure: each "Error" line with the line before it,
 * as runc quotes them. Empty when the log is missing.
 */
export async function readCriuErrors(logPath: string, maxLines = 12): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(logPath, "utf8");
  } catch {
    return [];
  }
  const lines = text.split("\n");
  const picked = new Set<number>();
  lines.forEach((line, index) => {
    if (!/Error|error \(/.test(line) || BENIGN.some((pattern) => pattern.test(line))) return;
    if (index > 0 && !/Error/.test(lines[index - 1] ?? "")) picked.add(index - 1);
    picked.add(index);
  });
  return [...picked]
    .sort((a, b) => a - b)
    .map((index) => (lines[index] ?? "").trim())
    .filter(Boolean)
    .slice(-maxLines);
}

/** One line for a warning: the most specific error (the first), shortened. */
export function summarizeCriuErrors(errors: readonly string[]): string {
  const first = errors.find((line) => /Error/.test(line) && !/FAILED/.test(line)) ?? errors[0];
  if (!first) return "no error in the CRIU log";
  return first.replace(/^\(\s*[\d.]+\)\s*/, "").replace(/^\s*\d+:\s*/, "");
}

/** `criu lazy-pages` at log level 4: "uffd: <pid>-<uffd>: #PF at 0x<address>" per fault it served. */
const FAULT_LINE = /uffd: (\d+)-\d+: #PF at 0x([0-9a-f]+)$/;

/**
 * The pages a lazy restore's app faulted on, per process (its PID in the images), each page
 * number (address >> 12) once, in the order of the faults. Empty when the log is missing or
 * was written at a level below 4.
 */
export async function readLazyFaults(logPath: string): Promise<Map<number, number[]>> {
  const faults = new Map<number, number[]>();
  let text: string;
  try {
    text = await readFile(logPath, "utf8");
  } catch {
    return faults;
  }
  const seen = new Set<string>();
  for (const line of text.split("\n")) {
    const match = FAULT_LINE.exec(line);
    if (!match || seen.has(`${match[1]}:${match[2]}`)) continue;
    seen.add(`${match[1]}:${match[2]}`);
    const pid = Number(match[1]);
    const pages = faults.get(pid) ?? [];
    pages.push(Math.floor(Number.parseInt(match[2] ?? "0", 16) / 4096));
    faults.set(pid, pages);
  }
  return faults;
}
