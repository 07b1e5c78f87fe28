import { parseArgs } from "node:util";
import { type DoctorCheck, runDoctor } from "./doctor-checks.js";

const MARKS: Record<DoctorCheck["status"], string> = {
  ok: "ok",
  missing: "missing",
  broken: "broken",
  info: "info",
};

/** `warmstart doctor [--json]`: exit 0 only when a launch could be warm. */
export async function runDoctorCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { json: { type: "boolean", default: false } },
    strict: true,
  });
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
