import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import {
  createNotifyListener,
  LineBuffer,
  type NotifyListener,
  parseProbe,
  waitUntilReady,
} from "../../src/readiness/index.js";

/** What libsystemd's sd_notify() does: one datagram to $NOTIFY_SOCKET. */
const SEND_NOTIFY = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
s.sendall(sys.argv[1].encode())
`;

function sendNotify(socketPath: string, message: string): Promise<unknown> {
  return promisify(execFile)("python3", ["-c", SEND_NOTIFY, message], {
    env: { ...process.env, NOTIFY_SOCKET: socketPath },
  });
}

async function makeListener(t: test.TestContext): Promise<NotifyListener> {
  const dir = await mkdtemp(join(tmpdir(), "warmstart-notify-"));
  const listener = await createNotifyListener(dir);
  t.after(async () => {
    await listener.close();
    await rm(dir, { recursive: true, force: true });
  });
  return listener;
}

async function waitFor(isDone: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadlineMs = performance.now() + 5000;
  while (!(await isDone())) {
    if (performance.now() > deadlineMs) assert.fail(`gave up waiting: ${what}`);
    await delay(10);
  }
}

/** PIDs whose command line mentions `text`, found the way ps does. */
async function findProcesses(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(text)) pids.push(Number(name));
  }
  return pids;
}

describe("createNotifyListener", () => {
  test("binds the socket and passes a notify probe on READY=1 sent during the wait", async (t) => {
    const listener = await makeListener(t);
    assert.ok(existsSync(listener.path));
    assert.equal(listener.path.endsWith("/notify.sock"), true);
    const messages: Record<string, string>[] = [];
    listener.onMessage((fields) => messages.push(fields));
    const waiting = waitUntilReady({
      probes: [parseProbe("notify", "/")],
      timeoutMs: 10_000,
      output: new LineBuffer(),
      notify: listener,
    });
    await sendNotify(listener.path, "STATUS=warming up");
    await sendNotify(listener.path, "READY=1\nSTATUS=serving\nMAINPID=42");
    const outcome = await waiting;
    assert.equal(outcome.ready, true);
    assert.deepEqual(messages, [{ STATUS: "warming up" }, { READY: "1", STATUS: "serving", MAINPID: "42" }]);
  });

  test("READY=1 received before the wait began still counts", async (t) => {
    const listener = await makeListener(t);
    let isReceived = false;
    listener.onMessage(() => {
      isReceived = true;
    });
    await sendNotify(listener.path, "READY=1");
    await waitFor(() => isReceived, "the READY=1 message");
    assert.equal(listener.readyReceived, true);
    const outcome = await waitUntilReady({
      probes: [parseProbe("notify", "/")],
      timeoutMs: 0,
      output: new LineBuffer(),
      notify: listener,
    });
    assert.equal(outcome.ready, true);
  });

  test("messages without READY=1 leave the probe pending", async (t) => {
    const listener = await makeListener(t);
    const probe = parseProbe("notify", "/");
    const waiting = waitUntilReady({
      probes: [probe],
      timeoutMs: 300,
      output: new LineBuffer(),
      notify: listener,
    });
    await sendNotify(listener.path, "STATUS=almost\nREADY=0");
    const outcome = await waiting;
    assert.equal(outcome.ready === false && outcome.reason, "timeout");
    assert.deepEqual(outcome.ready === false && outcome.reason === "timeout" && outcome.pending, [probe]);
    assert.equal(listener.readyReceived, false);
  });

  test("systemd-notify --ready passes the probe", async (t) => {
    const listener = await makeListener(t);
    const run = promisify(execFile);
    try {
      await run("systemd-notify", ["--ready", "--status=up"], {
        env: { ...process.env, NOTIFY_SOCKET: listener.path },
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT")
        return t.skip("systemd-notify is not installed");
      throw error;
    }
    const outcome = await waitUntilReady({
      probes: [parseProbe("notify", "/")],
      timeoutMs: 10_000,
      output: new LineBuffer(),
      notify: listener,
    });
    assert.equal(outcome.ready, true);
  });

  test("close() ends the helper and removes the socket", async (t) => {
    const listener = await makeListener(t);
    const [helper, ...others] = await findProcesses(listener.path);
    assert.ok(helper !== undefined && others.length === 0, "exactly one helper process");
    await listener.close();
    assert.equal(existsSync(listener.path), false);
    assert.equal(existsSync(`/proc/${helper}`), false);
    await assert.rejects(sendNotify(listener.path, "READY=1"));
    await listener.close();
  });

  test("the helper does not outlive a parent killed with SIGKILL", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "warmstart-notify-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const moduleUrl = new URL("../../src/readiness/notify.js", import.meta.url).href;
    const script = `
      import { createNotifyListener } from ${JSON.stringify(moduleUrl)};
      const listener = await createNotifyListener(${JSON.stringify(dir)});
      console.log(listener.path);
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    t.after(() => parent.kill("SIGKILL"));
    const [path] = await createInterface({ input: parent.stdout })
      [Symbol.asyncIterator]()
      .next()
      .then((r) => [r.value]);
    assert.equal(path, join(dir, "notify.sock"));
    const helpers = await findProcesses(path);
    assert.equal(helpers.length, 1);
    parent.kill("SIGKILL");
    await waitFor(async () => (await findProcesses(path)).length === 0, "the helper to exit");
    assert.equal(existsSync(path), false);
  });

  test("a missing python3 is a spawn-failed error that says to install it", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "warmstart-notify-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await assert.rejects(createNotifyListener(dir, { python: join(dir, "no-python3") }), {
      name: "WarmstartError",
      code: "spawn-failed",
      shortMessage: `Could not start ${join(dir, "no-python3")} for the notify readiness probe: spawn ${join(dir, "no-python3")} ENOENT`,
      hint: "Install python3 (apt-get install python3): the notify probe uses it to receive sd_notify messages.",
    });
  });

  test("a directory it cannot bind in is a spawn-failed error with the reason", async () => {
    const dir = join(tmpdir(), "warmstart-notify-missing-dir", String(process.pid));
    await assert.rejects(createNotifyListener(dir, { python: "python3" }), {
      name: "WarmstartError",
      code: "spawn-failed",
      shortMessage: `The sd_notify helper (python3) exited before it bound ${dir}/notify.sock: No such file or directory`,
      hint: `Check that ${dir} exists and is writable.`,
    });
  });
});
