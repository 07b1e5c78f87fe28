// bench/results/ttfr.svg: median TTFR per workload (groups) and mode (bars), with p25-p75
// whiskers. Hand-written SVG: a chart library would be the only runtime dependency of bench/.
import { MODE_NAMES, type ModeName } from "./modes.js";
import type { BenchResults } from "./results.js";

const COLORS: Record<ModeName, string> = {
  bare: "#9e9e9e",
  cold: "#e8833a",
  warm: "#1f6fd1",
  "raw-criu": "#8fbcec",
  "node-snapshot": "#5aa04a",
  appcds: "#9c5bb5",
};

const WIDTH = 820;
const HEIGHT = 420;
const MARGIN = { top: 78, right: 20, bottom: 58, left: 64 };
const FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\"";

export function renderChart(results: BenchResults): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const groups = results.workloads.map((workload) => ({
    name: workload.name,
    bars: workload.modes.flatMap((mode) => (mode.ttfrMs ? [{ mode: mode.mode, ttfr: mode.ttfrMs }] : [])),
  }));
  const top = Math.max(
    1,
    ...groups.flatMap((group) => group.bars.map((bar) => Math.max(bar.ttfr.p75, bar.ttfr.median))),
  );
  const step = niceStep(top / 5);
  const yMax = Math.ceil((top * 1.08) / step) * step;
  const y = (ms: number) => MARGIN.top + plotHeight - (ms / yMax) * plotHeight;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ${FONT} font-size="12">`,
    `<title>Time to first response per workload and mode (${results.command})</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${MARGIN.left}" y="22" font-size="15" font-weight="600" fill="#222">Time to first response, median of ${results.settings.runs} runs (whiskers: p25-p75; lower is better)</text>`,
  ];
  // Legend: only the modes that appear, in the modes' fixed order, wrapped to the width.
  const shown = MODE_NAMES.filter((mode) =>
    groups.some((group) => group.bars.some((bar) => bar.mode === mode)),
  );
  let legendX = MARGIN.left;
  let legendY = 44;
  for (const mode of shown) {
    const itemWidth = 22 + mode.length * 7.2 + 18;
    if (legendX + itemWidth > WIDTH - MARGIN.right) {
      legendX = MARGIN.left;
      legendY += 18;
    }
    out.push(
      `<rect x="${legendX}" y="${legendY - 10}" width="12" height="12" fill="${COLORS[mode]}"/>`,
      `<text x="${legendX + 18}" y="${legendY}" fill="#222">${mode}</text>`,
    );
    legendX += itemWidth;
  }
  for (let tick = 0; tick <= yMax + step / 2; tick += step) {
    out.push(
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${fmt(y(tick))}" y2="${fmt(y(tick))}" stroke="${tick === 0 ? "#555" : "#e4e4e4"}"/>`,
      `<text x="${MARGIN.left - 8}" y="${fmt(y(tick) + 4)}" text-anchor="end" fill="#555">${tick}</text>`,
    );
  }
  out.push(
    `<text transform="translate(16 ${fmt(MARGIN.top + plotHeight / 2)}) rotate(-90)" text-anchor="middle" fill="#555">ms</text>`,
  );
  const groupWidth = plotWidth / Math.max(1, groups.length);
  for (const [index, group] of groups.entries()) {
    const barWidth = Math.min(34, (groupWidth * 0.84) / Math.max(1, group.bars.length));
    const left = MARGIN.left + index * groupWidth + (groupWidth - barWidth * group.bars.length) / 2;
    for (const [barIndex, bar] of group.bars.entries()) {
      const x = left + barIndex * barWidth;
      const middle = x + barWidth / 2;
      out.push(
        `<rect x="${fmt(x + 1)}" y="${fmt(y(bar.ttfr.median))}" width="${fmt(barWidth - 2)}" height="${fmt(y(0) - y(bar.ttfr.median))}" fill="${COLORS[bar.mode]}"><title>${group.name} ${bar.mode}: ${Math.round(bar.ttfr.median)} ms</title></rect>`,
        `<line x1="${fmt(middle)}" x2="${fmt(middle)}" y1="${fmt(y(bar.ttfr.p25))}" y2="${fmt(y(bar.ttfr.p75))}" stroke="#333"/>`,
        `<line x1="${fmt(middle - 4)}" x2="${fmt(middle + 4)}" y1="${fmt(y(bar.ttfr.p75))}" y2="${fmt(y(bar.ttfr.p75))}" stroke="#333"/>`,
        `<line x1="${fmt(middle - 4)}" x2="${fmt(middle + 4)}" y1="${fmt(y(bar.ttfr.p25))}" y2="${fmt(y(bar.ttfr.p25))}" stroke="#333"/>`,
        `<text x="${fmt(middle)}" y="${fmt(y(Math.max(bar.ttfr.median, bar.ttfr.p75)) - 5)}" text-anchor="middle" font-size="10" fill="#222">${Math.round(bar.ttfr.median)}</text>`,
      );
    }
    out.push(
      `<text x="${fmt(MARGIN.left + (index + 0.5) * groupWidth)}" y="${HEIGHT - MARGIN.bottom + 22}" text-anchor="middle" font-weight="600" fill="#222">${group.name}</text>`,
    );
  }
  const { machine } = results;
  out.push(
    `<text x="${WIDTH - MARGIN.right}" y="${HEIGHT - 10}" text-anchor="end" font-size="10" fill="#777">${escapeXml(
      `${results.command} · ${machine.cpuModel}, ${machine.nproc} CPUs, Linux ${machine.kernel}, Node ${machine.node}, CRIU ${machine.criu ?? "-"} · ${machine.date.slice(0, 10)}`,
    )}</text>`,
    "</svg>",
  );
  return `${out.join("\n")}\n`;
}

/** 1, 2 or 5 times a power of ten: axis ticks a reader can add up. */
function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  const scaled = raw / power;
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function fmt(value: number): string {
  return value.toFixed(1);
}
