// bench/results/latest.md: the tables the README shows, rendered from the results. Tables
// are padded the way biome formats markdown, so the file is stable under `biome check`.
import type { BenchResults, ModeResult, WorkloadResult } from "./results.js";
import type { Summary } from "./stats.js";

export function renderMarkdown(results: BenchResults): string {
  const { machine, settings } = results;
  const nodeBoot = results.processes.find((figure) => figure.name === "node -e 0")?.ms?.median;
  const lines = [
    `Measured with \`${results.command}\` on ${machine.date.slice(0, 10)} (warmstart ${results.revision ?? "?"}): ${machine.cpuModel}, ` +
      `${machine.nproc} CPUs, ${machine.memoryGiB} GiB RAM, ${machine.os}, Linux ${machine.kernel}, ` +
      `Node ${machine.node}, CRIU ${machine.criu ?? "missing"}, ${machine.java ?? "no JVM"}; ` +
      `load average ${machine.loadAverage} at the start.`,
    "",
    `Time to first response (TTFR): from spawning the command to the first 2xx answer to \`GET /\`, ` +
      `${settings.runs} runs per mode, the modes taking turns run by run.`,
    "",
    ...table(
      ["workload", "mode", "median TTFR", "p25-p75", "min-max", "made from"],
      "llrrrl",
      results.workloads.flatMap((workload) =>
        workload.modes.map((mode) => [
          workload.name,
          mode.mode,
          mode.ttfrMs ? `${fmtMs(mode.ttfrMs.median)} ms` : "failed",
          spread(mode.ttfrMs, "p25", "p75"),
          spread(mode.ttfrMs, "min", "max"),
          mode.artifact ? `${mode.artifact.kind}, ${fmtMb(mode.artifact.bytes)}` : "",
        ]),
      ),
    ),
    "",
    "Ratios of runs taken side by side (run i of one mode against run i of the other): median [min, max].",
    `warmstart's overhead is warm − raw-criu − the median \`node -e 0\` (${nodeBoot ?? "?"} ms).`,
    "",
    ...table(
      ["workload", "warm / cold", "warm / bare", "warm / raw-criu", "warmstart overhead", "warm / peer"],
      "lrrrrr",
      results.workloads.map((workload) => {
        const { ratios } = workload;
        const peer =
          ratios.peer && ratios.warmOverPeer ? `${ratio(ratios.warmOverPeer)} vs ${ratios.peer}` : "";
        return [
          workload.name,
          ratio(ratios.warmOverCold),
          ratio(ratios.warmOverBare),
          ratio(ratios.warmOverRawCriu),
          ratios.warmstartOverheadMs ? withRange(ratios.warmstartOverheadMs, (ms) => `${fmtMs(ms)} ms`) : "",
          peer,
        ];
      }),
    ),
    "",
    `Large-heap Node warm / tiny Node warm: ${ratio(results.crossRatios.largeHeapWarmOverTinyWarm) || "not measured"}.`,
    "",
    `Whole processes, spawn to exit, ${results.processes[0]?.runsMs.length ?? 0} runs each:`,
    "",
    ...table(
      ["process", "median", "min-max"],
      "lrr",
      results.processes.map((figure) => [
        `\`${figure.name}\``,
        figure.ms ? `${fmtMs(figure.ms.median)} ms` : "failed",
        spread(figure.ms, "min", "max"),
      ]),
    ),
    "",
    "In-process steps of a warm launch (tinybench, per call, warmstart's modules on the real entry):",
    "",
    ...table(
      ["workload", "step", "median", "p75", "p99"],
      "llrrr",
      results.workloads.flatMap((workload) =>
        workload.inProcess.map((figure) => [
          workload.name,
          figure.name,
          fmtSmallMs(figure.medianMs),
          fmtSmallMs(figure.p75Ms),
          fmtSmallMs(figure.p99Ms),
        ]),
      ),
    ),
    ...renderErrors(results.workloads),
  ];
  return `${lines.join("\n")}\n`;
}

function renderErrors(workloads: readonly WorkloadResult[]): string[] {
  const failures = workloads.flatMap((workload) => [
    ...(workload.error ? [`- ${workload.name}: ${firstLine(workload.error)}`] : []),
    ...workload.modes
      .filter((mode): mode is ModeResult & { error: string } => mode.error !== null)
      .map((mode) => `- ${workload.name} ${mode.mode}: ${firstLine(mode.error)}`),
  ]);
  return failures.length > 0
    ? ["", "Failures (see latest.json for the full messages):", "", ...failures]
    : [];
}

/** A markdown table padded as biome pads it: cells to the column's width, at least 3. */
export function table(
  header: readonly string[],
  align: string,
  rows: readonly (readonly string[])[],
): string[] {
  const widths = header.map((title, column) =>
    Math.max(3, title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const isRight = (column: number) => align[column] === "r";
  const line = (cells: readonly string[]) =>
    `| ${widths
      .map((width, column) =>
        isRight(column) ? (cells[column] ?? "").padStart(width) : (cells[column] ?? "").padEnd(width),
      )
      .join(" | ")} |`;
  const rule = `| ${widths.map((width, column) => (isRight(column) ? `${"-".repeat(width - 1)}:` : "-".repeat(width))).join(" | ")} |`;
  return [line(header), rule, ...rows.map(line)];
}

function spread(summary: Summary | null | undefined, low: keyof Summary, high: keyof Summary): string {
  return summary ? `${fmtMs(summary[low])}-${fmtMs(summary[high])}` : "";
}

/** `median [min, max]`: brackets, because an overhead can be negative. */
function withRange(summary: Summary, format: (value: number) => string): string {
  return `${format(summary.median)} [${format(summary.min)}, ${format(summary.max)}]`;
}

function ratio(summary: Summary | null): string {
  return summary ? withRange(summary, (value) => value.toFixed(2)) : "";
}

function fmtMs(ms: number): string {
  return Math.round(ms).toString();
}

function fmtSmallMs(ms: number | null): string {
  if (ms === null) return "failed";
  return ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`;
}

function fmtMb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function firstLine(text: string): string {
  return text.split("\n")[0] ?? "";
}
