import { formatBytes } from "./format.js";

/**
 * A one-line progress bar on stderr, redrawn at most every 100 ms, only when stderr is a
 * terminal (a pipe or a log gets nothing). Returns the callback the library calls and a
 * function that clears the line.
 */
export function createProgressBar(label: string): {
  update: (done: number, total: number) => void;
  end: () => void;
} {
  const stream = process.stderr;
  if (!stream.isTTY) return { update: () => {}, end: () => {} };
  let lastDrawMs = 0;
  let isDrawn = false;
  const update = (done: number, total: number) => {
    const now = Date.now();
    if (now - lastDrawMs < 100 && done < total) return;
    lastDrawMs = now;
    const width = 30;
    const ratio = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(ratio * width);
    const bar = `${"#".repeat(filled)}${"-".repeat(width - filled)}`;
    stream.write(
      `\r${label} [${bar}] ${Math.round(ratio * 100)}% ${formatBytes(done)} / ${formatBytes(total)}`,
    );
    isDrawn = true;
  };
  return {
    update,
    end: () => {
      if (isDrawn) stream.write("\r\x1b[K");
    },
  };
}
