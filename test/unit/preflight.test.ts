// Pre-flight's reading of /proc facts, on made-up processes: the kinds the integration test
// cannot make without a terminal, a GPU or root's mlock limits. The log lines are CRIU
// 4.2.1's, from real dumps of such processes on this machine.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { collectFixes, decodeAddress, explainDumpFailure, findIssues } from "../../src/doctor/preflight.js";
import {
  type FdFact,
  type ProcessFacts,
  parseSsUnix,
  type TreeFacts,
} from "../../src/doctor/preflight-facts.js";

const device = (major: number, sizeBytes = 0) => ({
  isCharacterDevice: true,
  isFile: false,
  rdevMajor: major,
  sizeBytes,
});

function tree(fds: FdFact[], extra: Partial<ProcessFacts> = {}, more: Partial<TreeFacts> = {}): TreeFacts {
  const process: ProcessFacts = {
    pid: 100,
    command: "app",
    executable: "app",
    fds,
    lockedBytes: 0,
    ...extra,
  };
  return {
    rootPid: 100,
    processes: [process],
    tcp: [],
    unix: new Map(),
    ownerOf: () => undefined,
    limitations: [],
    ...more,
  };
}

describe("findIssues", () => {
  test("memory devices and a pty pair the app made itself are carried: no finding", () => {
    const findings = findIssues(
      tree([
        { fd: 0, target: "/dev/null", info: "", stat: device(1) },
        { fd: 3, target: "/dev/urandom", info: "", stat: device(1) },
        { fd: 4, target: "/dev/ptmx", info: "tty-index:\t7\n", stat: device(5) },
        { fd: 5, target: "/dev/pts/7", info: "", stat: device(136) },
      ]),
    );
    assert.deepEqual(findings, []);
  });

  test("a terminal whose other side is outside blocks the dump, and the tty error is explained by it", () => {
    const findings = findIssues(tree([{ fd: 0, target: "/dev/pts/0", info: "", stat: device(136) }]));
    assert.equal(findings.length, 1);
    const [tty] = findings;
    assert.equal(tty?.kind, "tty");
    assert.equal(tty?.subject, "terminal /dev/pts/0");
    assert.equal(tty?.isDumpBlocking, true);
    const log = [
      "(00.061) Error (criu/tty.c:410): tty: Found slave peer index 0 without correspond master peer",
      "(00.062) Error (criu/cr-dump.c:1975): Dumping FAILED.",
    ];
    assert.equal(explainDumpFailure(log, findings), tty);
  });

  test("a GPU device blocks the dump and says why; the device error names its fd", () => {
    const findings = findIssues(
      tree([
        { fd: 3, target: "/dev/tty0", info: "", stat: device(4) },
        { fd: 9, target: "/dev/nvidia0", info: "", stat: device(195) },
      ]),
    );
    const gpu = findings.find((finding) => finding.kind === "device");
    assert.equal(gpu?.subject, "GPU device /dev/nvidia0");
    assert.match(gpu?.effect ?? "", /vendor plugin \(cuda, amdgpu\)/);
    const log = ["(00.107) Error (criu/files-ext.c:94): Can't dump file 9 of that type [20600] (chr 195:0)"];
    assert.equal(explainDumpFailure(log, findings), gpu);
    const console = findings.find((finding) => finding.kind === "tty");
    const consoleLog = [
      "(00.107) Error (criu/files-ext.c:94): Can't dump file 3 of that type [20600] (chr 4:0)",
    ];
    assert.equal(explainDumpFailure(consoleLog, findings), console);
  });

  test("file locks and mlocked memory restore, with what behaves differently", () => {
    const findings = findIssues(
      tree(
        [
          {
            fd: 3,
            target: "/var/lib/app/app.lock",
            info: "pos:\t0\nlock:\t1: FLOCK  ADVISORY  WRITE 100 fe:00:2146537 0 EOF\n",
            stat: { isCharacterDevice: false, isFile: true, rdevMajor: 0, sizeBytes: 0 },
          },
        ],
        { lockedBytes: 1028 * 1024 },
      ),
    );
    assert.deepEqual(
      findings.map((finding) => [finding.kind, finding.subject, finding.isDumpBlocking]),
      [
        ["file-lock", "FLOCK write lock on /var/lib/app/app.lock", false],
        ["mlocked-memory", "1028 KiB locked in memory (mlock)", false],
      ],
    );
  });

  test("a unix socket whose peer is inside the tree is carried; one to outside is not", () => {
    const facts = tree(
      [
        { fd: 3, target: "socket:[11]", info: "" },
        { fd: 4, target: "socket:[12]", info: "" },
        { fd: 5, target: "socket:[13]", info: "" },
      ],
      {},
      {
        unix: new Map([
          ["11", { inode: "11", peerInode: "12", address: "*" }],
          ["12", { inode: "12", peerInode: "11", address: "*" }],
          ["13", { inode: "13", peerInode: "99", address: "*" }],
          ["99", { inode: "99", peerInode: "13", address: "/run/systemd/journal/stdout" }],
        ]),
        ownerOf: (inode) => (inode === "99" ? { pid: 1, command: "systemd-journal" } : undefined),
      },
    );
    const findings = findIssues(facts);
    assert.deepEqual(
      findings.map((finding) => finding.subject),
      [
        "unix socket connected to /run/systemd/journal/stdout, other end held by systemd-journal (pid 1), outside the app",
      ],
    );
  });

  test("io_uring: one finding per process, with Node's fix; none for other runtimes", () => {
    const rings = [4, 5, 13].map((fd) => ({ fd, target: "anon_inode:[io_uring]", info: "" }));
    const node = findIssues(tree(rings, { command: "node", executable: "node" }));
    assert.equal(node.length, 1);
    assert.equal(node[0]?.subject, "3 io_uring instances (fds 4, 5, 13)");
    assert.deepEqual(collectFixes(node), { UV_USE_IO_URING: "0" });
    const other = findIssues(tree(rings, { command: "server", executable: "server" }));
    assert.deepEqual(collectFixes(other), {});
  });

  test("a failure no finding explains is not pinned on one", () => {
    const findings = findIssues(tree([{ fd: 9, target: "/dev/nvidia0", info: "", stat: device(195) }]));
    assert.equal(explainDumpFailure(["Error (criu/mem.c:1): Can't read pages"], findings), undefined);
  });
});

describe("decodeAddress", () => {
  test("IPv4 and IPv6 as /proc/net/tcp{,6} print them on a little-endian machine", () => {
    assert.equal(decodeAddress("0100007F:1F90", "LE"), "127.0.0.1:8080");
    assert.equal(decodeAddress("0100007F:1F90", "BE"), "1.0.0.127:8080");
    assert.equal(decodeAddress("00000000000000000000000001000000:0050", "LE"), "[::1]:80");
    assert.equal(decodeAddress("0000000000000000FFFF00000100007F:0050", "LE"), "127.0.0.1:80");
    assert.equal(decodeAddress("B80D0120000000000000000001000000:01BB", "LE"), "[2001:db8::1]:443");
  });
});

describe("parseSsUnix", () => {
  test("connected sockets by inode, a path with spaces kept whole; unconnected ones left out", () => {
    const output = [
      "u_str LISTEN 0      511    /tmp/pf/o 2.sock 90145 * 0    ",
      "u_str ESTAB  0      0      /tmp/pf/o 2.sock 89154 * 90153",
      "u_str ESTAB  0      0      * 90153 * 89154",
      "u_dgr UNCONN 0      0      @abstract 5 * 0",
    ].join("\n");
    assert.deepEqual(
      [...parseSsUnix(output).values()],
      [
        { inode: "89154", peerInode: "90153", address: "/tmp/pf/o 2.sock" },
        { inode: "90153", peerInode: "89154", address: "*" },
      ],
    );
  });
});
