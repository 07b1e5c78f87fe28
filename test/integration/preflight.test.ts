// Issue 12: pre-flight names what a checkpoint cannot carry, on real processes, and a real
// `criu dump` (warmstart's own flags) fails exactly where a finding says it will, and the
// finding explains the failure.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { readCriuErrors } from "../../src/criu/criu-log.js";
import { findCriu } from "../../src/criu/find-criu.js";
import {
  collectFixes,
  explainDumpFailure,
  type PreflightFinding,
  runPreflight,
} from "../../src/doctor/preflight.js";
import { criuDump } from "../../src/exec/command-lines.js";
import {
  CLI,
  fixture,
  makeTempDir,
  newCache,
  runArgs,
  useIntegrationRig,
  WarmstartRun,
  waitUntil,
} from "./rig.js";

useIntegrationRig();

const holders = new Set<ChildProcess>();
after(() => {
  for (const holder of holders) holder.kill("SIGKILL");
});

/**
 * A fixture holding one thing, in its own session (as warmstart's cold start runs apps). Its
 * output goes to a file: Node's stdio "pipe" is a socketpair, itself a unix socket to a
 * process outside the tree, which pre-flight would rightly report and CRIU refuse.
 */
async function startHolder(args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  const outputPath = join(makeTempDir("warmstart-preflight-out-"), "output");
  const outputFd = openSync(outputPath, "w");
  const child = spawn(process.execPath, [fixture("preflight-holder.cjs"), ...args], {
    detached: true,
    stdio: ["ignore", outputFd, outputFd],
    env: { ...process.env, ...env },
  });
  closeSync(outputFd);
  holders.add(child);
  let output = "";
  const isHolding = await waitUntil(() => {
    output = readFileSync(outputPath, "utf8");
    return output.includes("holding") || child.exitCode !== null;
  }, 10_000);
  assert.ok(isHolding && output.includes("holding"), `the holder did not start: ${output}`);
  assert.ok(child.pid);
  return child.pid;
}

/** `criu dump --leave-running` with the flags warmstart dumps with; the log's error lines. */
async function dump(pid: number): Promise<{ isDumped: boolean; errors: string[] }> {
  const criu = await findCriu();
  assert.ok(criu.found);
  const imagesDir = makeTempDir("warmstart-preflight-dump-");
  const [file, ...args] = criuDump(criu.criu.path, {
    pid,
    imagesDir,
    logFile: "dump.log",
    logLevel: 4,
    leaveRunning: true,
  });
  const result = spawnSync(file, args, { encoding: "utf8", timeout: 60_000 });
  return { isDumped: result.status === 0, errors: await readCriuErrors(join(imagesDir, "dump.log")) };
}

function only(findings: readonly PreflightFinding[], kind: PreflightFinding["kind"]): PreflightFinding {
  const matching = findings.filter((finding) => finding.kind === kind);
  assert.equal(matching.length, 1, `expected one ${kind} finding, got ${JSON.stringify(findings, null, 2)}`);
  return matching[0] as PreflightFinding;
}

describe("pre-flight on real processes, against a real criu dump", () => {
  let tcpServer: Server;
  let unixServer: Server;
  let tcpPort = 0;
  let unixPath = "";
  const accepted: Socket[] = [];

  before(async () => {
    tcpServer = createServer((socket) => accepted.push(socket.on("error", () => {})));
    await new Promise<void>((resolve) => tcpServer.listen(0, "127.0.0.1", resolve));
    const address = tcpServer.address();
    tcpPort = typeof address === "object" && address ? address.port : 0;
    unixPath = join(makeTempDir("warmstart-preflight-unix-"), "db.sock");
    unixServer = createServer((socket) => accepted.push(socket.on("error", () => {})));
    await new Promise<void>((resolve) => unixServer.listen(unixPath, resolve));
  });
  after(() => {
    for (const socket of accepted) socket.destroy();
    tcpServer.close();
    unixServer.close();
  });

  test("an established TCP connection to a process outside: named with its peer; dumped, comes back closed", async () => {
    const pid = await startHolder(["tcp", String(tcpPort)]);
    const report = await runPreflight(pid);
    const finding = only(report.findings, "tcp-established");
    assert.match(
      finding.subject,
      new RegExp(
        `^connection 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${tcpPort} \\(node, pid ${process.pid}\\)$`,
      ),
    );
    assert.equal(finding.isDumpBlocking, false);
    assert.match(finding.effect, new RegExp(`connection to 127\\.0\\.0\\.1:${tcpPort} closed`));
    const { isDumped, errors } = await dump(pid);
    assert.equal(isDumped, true, errors.join("\n"));
  });

  test("a unix socket connected to a process outside: named with the path and the process; the dump fails, explained by it", async () => {
    const pid = await startHolder(["unix", unixPath]);
    const report = await runPreflight(pid);
    const finding = only(report.findings, "unix-socket-outside");
    assert.equal(
      finding.subject,
      `unix socket connected to ${unixPath}, other end held by node (pid ${process.pid}), outside the app`,
    );
    assert.equal(finding.isDumpBlocking, true);
    const { isDumped, errors } = await dump(pid);
    assert.equal(isDumped, false);
    assert.ok(
      errors.some((line) => /External socket is used/.test(line)),
      errors.join("\n"),
    );
    assert.equal(explainDumpFailure(errors, report.findings), finding);
  });

  test("an inotify watch: named with its watch count; dumped", async () => {
    const pid = await startHolder(["inotify", makeTempDir("warmstart-preflight-watched-")]);
    const report = await runPreflight(pid);
    const finding = only(report.findings, "inotify-watch");
    assert.match(finding.subject, /^inotify instance with 1 watch /);
    const { isDumped, errors } = await dump(pid);
    assert.equal(isDumped, true, errors.join("\n"));
  });

  test("io_uring in Node (UV_USE_IO_URING=1): named, the dump fails, explained; UV_USE_IO_URING=0, the fix it offers, makes the dump pass", async () => {
    const pid = await startHolder(["io-uring"], { UV_USE_IO_URING: "1" });
    const report = await runPreflight(pid);
    const finding = only(report.findings, "io-uring");
    assert.equal(finding.isDumpBlocking, true);
    assert.deepEqual(collectFixes(report.findings), { UV_USE_IO_URING: "0" });
    const { isDumped, errors } = await dump(pid);
    assert.equal(isDumped, false);
    assert.equal(explainDumpFailure(errors, report.findings), finding);

    const fixed = await startHolder(["io-uring"], { UV_USE_IO_URING: "0" });
    const fixedReport = await runPreflight(fixed);
    assert.deepEqual(
      fixedReport.findings.map((f) => f.kind),
      [],
    );
    const fixedDump = await dump(fixed);
    assert.equal(fixedDump.isDumped, true, fixedDump.errors.join("\n"));
  });

  test("deleted files still open: a small one is carried in the image; one over 1 MiB makes the dump fail, explained", async () => {
    const dir = makeTempDir("warmstart-preflight-deleted-");
    const small = await startHolder(["deleted", dir, "100"]);
    const smallReport = await runPreflight(small);
    const smallFinding = only(smallReport.findings, "deleted-file");
    assert.equal(
      smallFinding.subject,
      `deleted file ${join(dir, "held-then-deleted")} (100 bytes), still open`,
    );
    assert.equal(smallFinding.isDumpBlocking, false);
    const smallDump = await dump(small);
    assert.equal(smallDump.isDumped, true, smallDump.errors.join("\n"));

    const bigDir = join(dir, "big");
    mkdirSync(bigDir);
    const big = await startHolder(["deleted", bigDir, String(2 * 1024 * 1024)]);
    const bigReport = await runPreflight(big);
    const bigFinding = only(bigReport.findings, "deleted-file");
    assert.equal(bigFinding.isDumpBlocking, true);
    const bigDump = await dump(big);
    assert.equal(bigDump.isDumped, false);
    assert.equal(explainDumpFailure(bigDump.errors, bigReport.findings), bigFinding);
  });

  test("warmstart doctor --pid prints each finding in plain words and exits 1 when one blocks the dump", async () => {
    const pid = await startHolder(["unix", unixPath]);
    const { fd } = only((await runPreflight(pid)).findings, "unix-socket-outside");
    const result = spawnSync(process.execPath, [CLI, "doctor", "--pid", String(pid)], { encoding: "utf8" });
    assert.equal(result.status, 1, result.stderr);
    assert.equal(
      result.stdout,
      `pid ${pid}: 1 process checked\n\n` +
        `blocks the dump  unix-socket-outside: unix socket connected to ${unixPath}, other end held by node (pid ${process.pid}), outside the app (pid ${pid} node, fd ${fd})\n` +
        '  what happens: the dump fails: CRIU cannot carry one end of a unix connection whose other end is outside the app (its log says "External socket is used")\n' +
        "  what to do: connect after the restore or on first use (a database or journald client that connects lazily), or close it before the app reports ready; log to stdout rather than to a socket\n",
    );
    const bad = spawnSync(process.execPath, [CLI, "doctor", "--pid", "abc"], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    assert.equal(
      bad.stderr,
      'warmstart: error: Expected --pid to be a process ID (a positive integer), got "abc".\n',
    );
  });
});

describe("pre-flight's fixes, through warmstart run", () => {
  test("a dump that failed on io_uring leaves UV_USE_IO_URING=0 for the next cold start, which snapshots; the launch after is warm", async () => {
    const { cacheDir, reportFile } = newCache();
    // A Node that uses io_uring unless told otherwise, as Node 20.3 to 20.10 did by default.
    const command = [
      "sh",
      "-c",
      '[ -n "$UV_USE_IO_URING" ] || export UV_USE_IO_URING=1; exec "$0" "$@"',
      process.execPath,
      fixture("preflight-holder.cjs"),
      "io-uring",
    ];
    const launch = async (): Promise<string> => {
      const run = new WarmstartRun(runArgs(cacheDir, reportFile, ["log:holding"], command));
      const [, mode] = await run.waitFor(/ready, (cold|warm)/, "stderr", 60_000);
      if (mode === "cold")
        await run.waitFor(/snapshot saved|snapshot failed|no snapshot taken/, "stderr", 60_000);
      await run.stop();
      return run.stderr;
    };
    const first = await launch();
    assert.match(first, /pre-flight: \d+ io_uring instances \(fds [\d, ]+\): the dump fails/);
    assert.match(first, /snapshot failed/);
    assert.match(
      first,
      /the next cold start of this command sets UV_USE_IO_URING=0, which avoids that failure/,
    );
    const second = await launch();
    assert.match(second, /ready, cold/);
    assert.match(
      second,
      /pre-flight fix: UV_USE_IO_URING=0 for this cold start \(the last dump failed: \d+ io_uring instances \(fds [\d, ]+\): the dump fails/,
    );
    assert.doesNotMatch(second, /pre-flight: \d+ io_uring/);
    assert.match(second, /snapshot saved/);
    assert.match(await launch(), /ready, warm/);
  });
});
