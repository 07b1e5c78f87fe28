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
