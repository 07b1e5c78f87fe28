// Two hosts, simulated by two network namespaces joined by a veth pair, each with its own
// cache: host A starts the app cold and pushes to a registry it runs; host B pulls the
// snapshot and restores it; a request from A reaches the restored app on B.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startRegistry, type TestRegistry } from "./registry.js";
import {
  CLI,
  fixture,
  freePort,
  makeCacheDir,
  makeTempDir,
  runArgs,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
} from "./rig.js";

useIntegrationRig();

const SUFFIX = String(process.pid);
const A = `ws-a-${SUFFIX}`;
const B = `ws-b-${SUFFIX}`;
// A /30 from TEST-NET-2 (RFC 5737): never routed, and only inside these namespaces.
const ADDRESS_A = "198.51.100.1";
const ADDRESS_B = "198.51.100.2";

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

/** `node -e` inside a namespace: the HTTP status of a GET, or 0. */
function statusFrom(namespace: string, url: string): { status: number; body: string } {
  const script = `fetch(${JSON.stringify(url)}).then(async (r) => { process.stdout.write(r.status + "\\n" + (await r.text())); }, () => process.stdout.write("0\\n"))`;
  const result = spawnSync("ip", ["netns", "exec", namespace, process.execPath, "-e", script], {
    encoding: "utf8",
    timeout: 20_000,
  });
  const [status = "0", ...body] = (result.stdout ?? "").split("\n");
  return { status: Number(status), body: body.join("\n") };
}

describe("two hosts", () => {
  let registry: TestRegistry | undefined;
  before(() => {
    ip("netns", "add", A);
    ip("netns", "add", B);
    ip(
      "link",
      "add",
      `wsva${SUFFIX}`.slice(0, 15),
      "type",
      "veth",
      "peer",
      "name",
      `wsvb${SUFFIX}`.slice(0, 15),
    );
    ip("link", "set", `wsva${SUFFIX}`.slice(0, 15), "netns", A);
    ip("link", "set", `wsvb${SUFFIX}`.slice(0, 15), "netns", B);
    ip("-n", A, "addr", "add", `${ADDRESS_A}/30`, "dev", `wsva${SUFFIX}`.slice(0, 15));
    ip("-n", B, "addr", "add", `${ADDRESS_B}/30`, "dev", `wsvb${SUFFIX}`.slice(0, 15));
    for (const [namespace, device] of [
      [A, `wsva${SUFFIX}`.slice(0, 15)],
      [B, `wsvb${SUFFIX}`.slice(0, 15)],
    ] as const) {
      ip("-n", namespace, "link", "set", "lo", "up");
      ip("-n", namespace, "link", "set", device, "up");
    }
  });
  after(async () => {
    await registry?.stop();
    // Deleting a namespace deletes its end of the veth pair, and so the pair.
    for (const namespace of [A, B]) spawnSync("ip", ["netns", "delete", namespace]);
  });

  it("A pushes, B pulls and restores, and a request from A reaches the restored app", async () => {
    registry = await startRegistry(
      ADDRESS_A,
      ["ip", "netns", "exec", A],
      async (address) => statusFrom(A, `http://${address}/v2/`).status === 200,
    );
    const fleet = makeTempDir("warmstart-fleet-");
    const secretFile = join(fleet, "fleet-secret");
    writeFileSync(secretFile, "the fleet's shared secret, 32 bytes\n", { mode: 0o600 });
    const keyFile = join(fleet, "sign.pem");
    const keygen = spawnSync(process.execPath, [CLI, "keygen", "-o", keyFile], { encoding: "utf8" });
    const publicKey = /public key: (\S+)/.exec(keygen.stderr)?.[1] ?? "";
    const remote = `oci://${registry.address}/fleet/app`;
    const env = {
      WARMSTART_REMOTE: remote,
      WARMSTART_REMOTE_INSECURE: registry.address,
      WARMSTART_FLEET_SECRET_FILE: secretFile,
      WARMSTART_SIGNING_KEY: keyFile,
      WARMSTART_TRUSTED_KEYS: publicKey,
      PORT: String(await freePort()),
      HOST: "0.0.0.0",
    };
    const port = env.PORT;
    const launchOn = (namespace: string, cacheDir: string, extra: string[] = []) =>
      new WarmstartRun(
        runArgs(
          cacheDir,
          join(cacheDir, "reports.jsonl"),
          [`tcp:127.0.0.1:${port}`],
          [process.execPath, fixture("secret-server.cjs")],
          extra,
        ),
        env,
        ["ip", "netns", "exec", namespace],
      );
    const cacheA = makeCacheDir();
    const onA = launchOn(A, cacheA);
    await onA.waitFor(/ready, cold/, "stderr", 60_000);
    const cold = JSON.parse(statusFrom(A, `http://127.0.0.1:${port}/`).body) as { bootId: string };
    await waitForEntry(cacheA);
    const pushed = await waitForPush(registry, remote, A);
    assert.ok(pushed, onA.stderr);
    await onA.stop();

    const onB = launchOn(B, makeCacheDir(), ["--no-remote-push"]);
    await onB.waitFor(/ready, (cold|warm)/, "stderr", 90_000);
    assert.match(onB.stderr, /pulled ws1-/);
    assert.match(onB.stderr, /ready, warm/);
    const fromA = statusFrom(A, `http://${ADDRESS_B}:${port}/`);
    assert.equal(fromA.status, 200);
    assert.equal((JSON.parse(fromA.body) as { bootId: string }).bootId, cold.bootId);
    await onB.stop();
  });
});

/** True once the repository has a tag (checked from inside namespace A, where the registry is). */
async function waitForPush(registry: TestRegistry, remote: string, namespace: string): Promise<boolean> {
  const repository = remote.replace(/^oci:\/\/[^/]+\//, "");
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const { status, body } = statusFrom(namespace, `http://${registry.address}/v2/${repository}/tags/list`);
    if (status === 200 && /ws1-/.test(body)) return true;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return false;
}
