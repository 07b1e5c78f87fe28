// The apps the benchmarks launch: the examples under examples/, as a user would start them.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file runs as dist/bench/workloads.js). */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const CLI = join(ROOT, "dist/bundle/cli.cjs");

export const WORKLOAD_NAMES = ["tiny", "node-large", "jvm"] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

/** What a user would pick instead of warmstart for this runtime, where one applies. */
export type PeerName = "node-snapshot" | "appcds";

export interface Workload {
  readonly name: WorkloadName;
  readonly description: string;
  /** The app's command, run from the repository root. */
  readonly command: readonly string[];
  /** Environment beyond PORT, for every mode (including the snapshot builders). */
  readonly env: Readonly<Record<string, string>>;
  readonly peer: PeerName | null;
  /** Bound on one launch, spawn to first answer, in any mode. */
  readonly timeoutMs: number;
  /** Run once before anything is measured. */
  readonly prepare: () => void;
}

const JVM_DIR = join(ROOT, "examples/jvm-slow-server");
export const JVM_BUILD_DIR = join(JVM_DIR, "build");
const JVM_RUN_SH = join(JVM_DIR, "run.sh");

export const WORKLOADS: readonly Workload[] = [
  {
    name: "tiny",
    description: "examples/tiny-server: Node HTTP server, no startup work (the baseline)",
    command: ["node", join(ROOT, "examples/tiny-server/server.js")],
    env: {},
    peer: null,
    timeoutMs: 30_000,
    prepare: () => {},
  },
  {
    name: "node-large",
    description: "examples/node-slow-server with HEAP_MB=200: 300k-record index plus ~200 MB of live objects",
    command: ["node", join(ROOT, "examples/node-slow-server/server.js")],
    env: { HEAP_MB: "200" },
    peer: "node-snapshot",
    timeoutMs: 60_000,
    prepare: () => {},
  },
  {
    name: "jvm",
    description: "examples/jvm-slow-server: OpenJDK HttpServer with a 1M-entry HashMap, via run.sh",
    command: [JVM_RUN_SH],
    env: {},
    peer: "appcds",
    timeoutMs: 60_000,
    prepare: () => {
      const result = spawnSync("bash", [join(JVM_DIR, "build.sh")], { encoding: "utf8", timeout: 180_000 });
      if (result.status !== 0) throw new Error(`build.sh failed: ${result.stderr || result.error?.message}`);
    },
  },
];

/**
 * run.sh's JVM flags, read from the script itself so that the AppCDS peer runs exactly the
 * JVM the other modes run (it cannot use run.sh: CDS refuses a directory on the classpath).
 */
export function readRunShJavaFlags(): string[] {
  const script = readFileSync(JVM_RUN_SH, "utf8").replace(/\\\n/g, " ");
  const flags = /^\s*exec java (.*?) -cp /m.exec(script)?.[1];
  if (!flags) throw new Error(`could not find the \`exec java ... -cp\` line in ${JVM_RUN_SH}`);
  return flags.trim().split(/\s+/);
}
