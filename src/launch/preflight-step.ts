import type { DumpExplanation } from "./checkpoint.js";
import type { LaunchContext } from "./launch-context.js";

/**
 * Pre-flight before a dump: what CRIU cannot carry, or what will behave differently after a
 * restore (an open connection comes back closed, a unix socket to an outside process fails
 * the dump...), said as warnings, each with what to do. A dump that fails anyway is explained
 * by the finding that matches CRIU's errors. Loaded with the checkpoint only: the doctor's
 * code stays off the warm path. Never fails a checkpoint: a pre-flight that cannot run says
 * nothing.
 */
export async function inspectBeforeDump(
  context: LaunchContext,
  pid: number,
): Promise<(errors: readonly string[]) => DumpExplanation | undefined> {
  try {
    const { explainDumpFailure, runPreflight } = await import("../doctor/preflight.js");
    const { findings } = await runPreflight(pid);
    for (const finding of findings) {
      context.opts.emit({
        type: "warning",
        message: `pre-flight: ${finding.subject}: ${finding.effect} (${finding.advice})`,
      });
    }
    return (errors) => {
      const finding = explainDumpFailure(errors, findings);
      if (!finding) return undefined;
      const text = `${finding.subject}: ${finding.effect}`;
      return finding.fix?.type === "env" ? { text, fixEnv: finding.fix.env } : { text };
    };
  } catch {
    return () => undefined;
  }
}
