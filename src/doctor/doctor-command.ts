import { parseCommandArgs, rejectPositionals } from "../commands/command-args.js";
import { invalidOption } from "../errors.js";
import type { DoctorCheck } from "./doctor-checks.js";
import type { PreflightReport } from "./preflight.js";

export const DOCTOR_USAGE = `Usage: warmstart doctor [--json] [--pid <pid>]

Checks what warmstart needs on this machine: privileges and, inside a container, the
capabilities and seccomp settings CRIU needs; CRIU (and whether it is the version warmstart
was tested with); the kernel features; the tools around CRIU; and a real checkpoint and
restore of a tiny app. Exits 0 when launches can be warm.

  --pid <pid>   instead, check a running process and its children: what a checkpoint
                cannot carry (connections, sockets to other processes, io_uring, deleted
                files, devices...) and what behaves differently after a restore. Exits 1
                when something would make the dump fail.
  --json        print the report as JSON`;

const MARKS: Record<DoctorCheck["status"], string> = {
  ok: "ok",
  missing: "missing",
  broken: "broken",
  info: "info",
};

/** `warmstart doctor [--json] [--pid <pid>]`: exit 0 only when a launch could be warm. */
export async function runDoctorCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      json: { type: "boolean", default: false },
      pid: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    DOCTOR_USAGE,
  );
  if (values.help) {
    process.stdout.write(`${DOCTOR_USAGE}\n`);
    return 0;
  }
  rejectPositionals(positionals, DOCTOR_USAGE);
  if (values.pid !== undefined) return runPreflightCommand(values.pid, values.json === true);
  const { runDoctor } = await import("./doctor-checks.js");
  const report = await runDoctor();
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const width = Math.max(...report.checks.map((check) => check.name.length));
    for (const check of report.checks) {
      const optional =
        !check.isRequired && check.status !== "ok" && check.status !== "info" ? " (optional)" : "";
      process.stdout.write(
        `${MARKS[check.status].padEnd(8)}${check.name.padEnd(width + 2)}${check.detail}${optional}\n`,
      );
      if (check.status !== "ok" && check.status !== "info" && check.fix) {
        process.stdout.write(`${"".padEnd(width + 10)}fix: ${check.fix}\n`);
      }
    }
    process.stdout.write(
      report.canBeWarm
        ? "\nwarmstart can checkpoint and restore on this machine.\n"
        : "\nLaunches will start cold until the problems above are fixed.\n",
    );
  }
  return report.canBeWarm ? 0 : 1;
}

async function runPreflightCommand(pidText: string, isJson: boolean): Promise<number> {
  const pid = Number(pidText);
  if (!/^\d+$/.test(pidText) || !Number.isSafeInteger(pid) || pid < 1) {
    throw invalidOption("--pid", "a process ID (a positive integer)", pidText);
  }
  const { existsSync } = await import("node:fs");
  if (!existsSync(`/proc/${pid}`)) throw invalidOption("--pid", "the ID of a running process", pidText);
  const { runPreflight } = await import("./preflight.js");
  const report = await runPreflight(pid);
  const isBlocked = report.findings.some((finding) => finding.isDumpBlocking);
  process.stdout.write(isJson ? `${JSON.stringify(report, null, 2)}\n` : renderPreflight(report));
  return isBlocked ? 1 : 0;
}

/** One paragraph per finding: what it is, what will happen, what to do. */
export function renderPreflight(report: PreflightReport): string {
  const count = report.processCount;
  const lines = [`pid ${report.rootPid}: ${count} process${count === 1 ? "" : "es"} checked`];
  if (report.findings.length === 0) lines.push("nothing that a checkpoint would not carry.");
  for (const finding of report.findings) {
    const fd = finding.fd === undefined ? "" : `, fd ${finding.fd}`;
    lines.push(
      "",
      `${finding.isDumpBlocking ? "blocks the dump" : "after a restore"}  ${finding.kind}: ${finding.subject} (pid ${finding.pid} ${finding.command}${fd})`,
      `  what happens: ${finding.effect}`,
      `  what to do: ${finding.advice}`,
    );
    if (finding.fix?.type === "env") {
      const env = Object.entries(finding.fix.env)
        .map(([name, value]) => `${name}=${value}`)
        .join(" ");
      lines.push(`  fix: start it with ${env}`);
    }
  }
  for (const limitation of report.limitations) lines.push("", `not checked: ${limitation}`);
  return `${lines.join("\n")}\n`;
}
