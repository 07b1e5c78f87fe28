// How sizes, times and tables read in the cache commands' output.
import { homedir } from "node:os";
import { sep } from "node:path";

const SIZE_UNITS = ["KiB", "MiB", "GiB", "TiB"] as const;

/** 1023 B, 4.0 KiB, 130 MiB: powers of 1024, as `--max-cache-size` reads them. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit: string = "B";
  for (const next of SIZE_UNITS) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}

/** 42s, 5m, 3h, 2d: the largest unit that is at least one, rounded down. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** The command as a shell would take it back: arguments with spaces or quotes are quoted. */
export function formatCommand(command: readonly string[]): string {
  return command
    .map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`))
    .join(" ");
}

/** A directory as a shell prompt shows it: the home directory as `~`. */
export function formatDirectory(dir: string, home = homedir()): string {
  if (home !== "" && home !== sep && (dir === home || dir.startsWith(`${home}${sep}`))) {
    return `~${dir.slice(home.length)}`;
  }
  return dir;
}

/**
 * Columns padded to their widest cell, two spaces apart. A row shorter than the header is a
 * note: its last cell runs free instead of being squeezed into the columns.
 */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  rightAligned: ReadonlySet<number>,
): string[] {
  const fullRows = [header, ...rows.filter((row) => row.length === header.length)];
  const widths = header.map((_, column) => Math.max(...fullRows.map((row) => row[column]?.length ?? 0)));
  return [header, ...rows].map((row) =>
    row
      .map((cell, column) => {
        if (column === row.length - 1 && (row.length < header.length || !rightAligned.has(column)))
          return cell;
        const width = widths[column] ?? 0;
        return rightAligned.has(column) ? cell.padStart(width) : cell.padEnd(width);
      })
      .join("  "),
  );
}
