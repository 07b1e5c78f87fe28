// What warmstart's in-app runtime costs an app's cold start: a Node process that loads it
// (NODE_OPTIONS --require, with live control pipes, as warmstart starts it) against one that
// does not, and a JVM with the Java agent against one without. Spawn to exit, interleaved.
// Run: npm run bench:runtime [-- --runs N]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { summarize } from "./stats.js";
import { ROOT } from "./workloads.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "30" } } });
const runs = Number(values.runs);
const runtimeDir = join(ROOT, "dist/runtime");
const work = mkdtempSync(join(tmpdir(), "warmstart-bench-runtime-"));

// The control pipes at fds 40 and 41, as the launcher gives them (FIFOs opened read-write,
// so that nothing blocks and nobody needs to read them).
const withPipes = (command: string) =>
  `mkfifo ${work}/down ${work}/up 2>/dev/null; exec 40<>${work}/down 41<>${work}/up; ${command}`;

const injected = {
  WARMSTART_CONTROL: "1:40:41",
  NODE_OPTIONS: `--require ${join(runtimeDir, "inject.cjs")}`,
  JAVA_TOOL_OPTIONS: `-javaagent:${join(runtimeDir, "warmstart-agent.jar")}`,
};

const cases = [
  { name: "node -e 0", command: "node -e 0", env: {} },
  { name: "node -e 0, runtime injected", command: "node -e 0", env: injected },
  { name: "java -version", command: "java -XX:-UsePerfData -version", env: {} },
  { name: "java -version, agent injected", command: "java -XX:-UsePerfData -version", env: injected },
];

const times = cases.map(() => [] as number[]);
for (let run = 0; run < runs; run++) {
  for (const [index, { command, env }] of cases.entries()) {
    const startedMs = performance.now();
    const result = spawnSync("bash", ["--norc", "-c", withPipes(command)], {
      env: { ...process.env, ...env },
      stdio: "ignore",
    });
    if (result.status !== 0) throw new Error(`${command} failed (${result.status})`);
    times[index]?.push(performance.now() - startedMs);
  }
}
// The runtime's own start-up, measured inside the process: require() of the runtime, after a
// require() of an empty file has paid the module system's first-use cost.
const empty = join(work, "empty.cjs");
writeFileSync(empty, "");
const inside = { empty: [] as number[], runtime: [] as number[] };
for (let run = 0; run < runs; run++) {
  const script = `let t = performance.now(); require(${JSON.stringify(empty)}); const e = performance.now() - t; t = performance.now(); require(${JSON.stringify(join(runtimeDir, "inject.cjs"))}); console.log(e, performance.now() - t)`;
  const result = spawnSync("bash", ["--norc", "-c", withPipes(`node -e '${script}'`)], {
    env: { ...process.env, WARMSTART_CONTROL: "1:40:41" },
    encoding: "utf8",
  });
  const [emptyMs, runtimeMs] = result.stdout.trim().split(" ").map(Number);
  inside.empty.push(emptyMs ?? Number.NaN);
  inside.runtime.push(runtimeMs ?? Number.NaN);
}
rmSync(work, { recursive: true, force: true });

console.log(`runs: ${runs} each, interleaved; spawn to exit (bash -c included)\n`);
for (const [index, { name }] of cases.entries()) {
  const summary = summarize(times[index] ?? []);
  console.log(
    `${name.padEnd(32)} median ${summary?.median.toFixed(1)} ms  p25-p75 ${summary?.p25.toFixed(1)}-${summary?.p75.toFixed(1)}`,
  );
}
console.log(
  `\ninside a process: require(inject.cjs) median ${summarize(inside.runtime, 2)?.median} ms, after require(<empty file>) median ${summarize(inside.empty, 2)?.median} ms`,
);
