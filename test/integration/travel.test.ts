// Snapshots that travel, end to end with real CRIU and a real registry (Debian's
// docker-registry, Distribution 2.8): export/import, a registry shared by two caches,
// host compatibility, signatures, encryption, a full disk, and two hosts in two network
// namespaces.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startRegistry, type TestRegistry } from "./registry.js";
import {
  CLI,
  fixture,
  freePort,
  getJson,
  listEntries,
  makeCacheDir,
  makeTempDir,
  newCache,
  ROOT,
  runArgs,
  STORE_DIR,
  useIntegrationRig,
  WarmstartRun,
  waitForEntry,
} from "./rig.js";

useIntegrationRig();

const SERVER = fixture("secret-server.cjs");

/** Runs the CLI to completion (export, import, push, keygen...). */
function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}, wrap: readonly string[] = []) {
  const [command, ...rest] = [...wrap, process.execPath, CLI, ...args];
  const result = spawnSync(command as string, rest, {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A fleet: a shared secret, a signing key and its public key, all in a fresh directory. */
function makeFleet() {
  const dir = makeTempDir("warmstart-fleet-");
  const secretFile = join(dir, "fleet-secret");
  writeFileSync(secretFile, "a fleet secret of more than sixteen bytes\n", { mode: 0o600 });
  const keyFile = join(dir, "sign.pem");
  const made = cli(["keygen", "-o", keyFile]);
  assert.equal(made.code, 0, made.stderr);
  const publicKey = /public key: (\S+)/.exec(made.stderr)?.[1] ?? "";
  return { dir, secretFile, keyFile, publicKey };
}

/** One launch of the secret server until it is ready; returns its answer, report, run. */
async function launch(cacheDir: string, port: number, env: NodeJS.ProcessEnv, extra: readonly string[] = []) {
  const args = runArgs(
    cacheDir,
    join(cacheDir, "reports.jsonl"),
    [`tcp:127.0.0.1:${port}`],
    [process.execPath, SERVER],
    extra,
  );
  const run = new WarmstartRun(args, { PORT: String(port), ...env });
  await run.waitFor(/ready, (cold|warm)/, "stderr", 60_000);
  const mode = /ready, (cold|warm)/.exec(run.stderr)?.[1];
  return { run, mode };
}

/** Stops a run and waits until its snapshot (if any) is in the cache. */
async function stopAfterSnapshot(run: WarmstartRun, cacheDir: string): Promise<string> {
  const key = await waitForEntry(cacheDir);
  await run.waitFor(/snapshot saved|push/, "stderr", 60_000).catch(() => undefined);
  await run.stop();
  return key;
}

/** The blobs of a repository's snapshot (config and layer), each also decompressed when zstd. */
async function readSnapshotBlobs(registry: TestRegistry, remote: string): Promise<Buffer[]> {
  const repository = remote.replace(/^oci:\/\/[^/]+\//, "");
  const tag = await waitForTag(registry, remote);
  const response = await fetch(`http://${registry.address}/v2/${repository}/manifests/${tag}`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  const manifest = (await response.json()) as { config: { digest: string }; layers: { digest: string }[] };
  const blobs: Buffer[] = [];
  for (const { digest } of [manifest.config, ...manifest.layers]) {
    const hex = digest.replace("sha256:", "");
    const raw = readFileSync(
      join(registry.storageDir, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data"),
    );
    blobs.push(raw);
    if (raw.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) {
      blobs.push(execFileSync("zstd", ["-d", "-c", "-q"], { input: raw, maxBuffer: 1 << 30 }));
    }
  }
  return blobs;
}

/** Runs the CLI, sampling its peak RSS (VmHWM) until it exits. */
async function runMeasured(
  args: readonly string[],
): Promise<{ code: number | null; stderr: string; peakRssBytes: number }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  let peakKb = 0;
  const sampler = setInterval(() => {
    try {
      peakKb = Math.max(
        peakKb,
        Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? 0),
      );
    } catch {
      // Exited between two samples.
    }
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  clearInterval(sampler);
  return { code, stderr, peakRssBytes: peakKb * 1024 };
}

describe("export and import", () => {
  it("export, rm, import, run: the launch is warm and serves the snapshotted state", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    const cold = await launch(cacheDir, port, {});
    assert.equal(cold.mode, "cold");
    const state = await getJson(`http://127.0.0.1:${port}/`);
    const key = await stopAfterSnapshot(cold.run, cacheDir);
    const archive = join(makeTempDir(), "snapshot.tar.zst");
    const exported = cli(["export", key.slice(0, 12), "--cache-dir", cacheDir, "-o", archive]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal(cli(["rm", key.slice(0, 12), "--cache-dir", cacheDir]).code, 0);
    assert.deepEqual(listEntries(cacheDir), []);
    const imported = cli(["import", archive, "--cache-dir", cacheDir]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.deepEqual(listEntries(cacheDir), [key]);
    const warm = await launch(cacheDir, port, {});
    assert.equal(warm.mode, "warm", warm.run.stderr);
    assert.equal((await getJson(`http://127.0.0.1:${port}/`)).bootId, state.bootId);
    await warm.run.stop();
  });

  it("a disk that fills up mid-import leaves the cache as it was", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    const cold = await launch(cacheDir, port, { APP_SECRET: "x".repeat(64) });
    const key = await stopAfterSnapshot(cold.run, cacheDir);
    const archive = join(makeTempDir(), "snapshot.tar");
    const exported = cli(["export", key, "--cache-dir", cacheDir, "--no-compress", "-o", archive]);
    assert.equal(exported.code, 0, exported.stderr);
    const signer = /signed by (\S+)/.exec(exported.stderr)?.[1] ?? "";
    const small = makeTempDir("warmstart-tmpfs-");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", small]);
    try {
      const before = readdirSync(small);
      const imported = cli(["import", archive, "--cache-dir", small, "--trust", signer]);
      assert.equal(imported.code, 1);
      assert.match(imported.stderr, /import refused: write-failed: .*ENOSPC/);
      assert.deepEqual(
        readdirSync(small).filter(
          (name) => !before.includes(name) && name !== STORE_DIR && name !== "signing-key.pem",
        ),
        [],
      );
      assert.deepEqual(readdirSync(join(small, STORE_DIR)), []);
    } finally {
      execFileSync("umount", [small]);
    }
  });
});

describe("the large-heap example", () => {
  it("its archive is smaller than its images, and export and import run in bounded memory", async () => {
    const { cacheDir } = newCache();
    const port = await freePort();
    const server = join(ROOT, "examples/node-slow-server/server.js");
    const run = new WarmstartRun(
      runArgs(cacheDir, join(cacheDir, "r.jsonl"), [`tcp:127.0.0.1:${port}`], [process.execPath, server]),
      {
        PORT: String(port),
        HEAP_MB: "200",
      },
    );
    await run.waitFor(/snapshot saved/, "stderr", 120_000);
    await run.stop();
    const [key = ""] = listEntries(cacheDir);
    const imageBytes = (
      JSON.parse(readFileSync(join(cacheDir, STORE_DIR, key, "manifest.json"), "utf8")) as {
        imageBytes: number;
      }
    ).imageBytes;
    const archive = join(makeTempDir(), "large.tar.zst");
    const exported = await runMeasured(["export", key, "--cache-dir", cacheDir, "-o", archive]);
    assert.equal(exported.code, 0, exported.stderr);
    const archiveBytes = statSync(archive).size;
    assert.ok(archiveBytes < imageBytes, `archive ${archiveBytes} bytes, images ${imageBytes}`);
    const signer = /signed by (\S+)/.exec(exported.stderr)?.[1] ?? "";
    const imported = await runMeasured(["import", archive, "--cache-dir", makeCacheDir(), "--trust", signer]);
    assert.equal(imported.code, 0, imported.stderr);
    // Bounded: neither process holds the images (over 300 MB) in memory, nor half of them.
    for (const [what, peak] of [
      ["export", exported.peakRssBytes],
      ["import", imported.peakRssBytes],
    ] as const) {
      assert.ok(
        peak < imageBytes / 2,
        `${what} peaked at ${peak} bytes of RSS for ${imageBytes} bytes of images`,
      );
    }
  });
});

describe("a registry shared by two caches", () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(async () => {
    await registry?.stop();
  });

  function fleetEnv(fleet: ReturnType<typeof makeFleet>, repository: string) {
    return {
      WARMSTART_REMOTE: `oci://${registry.address}/${repository}`,
      WARMSTART_FLEET_SECRET_FILE: fleet.secretFile,
      WARMSTART_SIGNING_KEY: fleet.keyFile,
      WARMSTART_TRUSTED_KEYS: fleet.publicKey,
    };
  }

  /** A cold start with a first cache, which pushes; returns the state it served. */
  async function coldPush(env: NodeJS.ProcessEnv, port: number, extra: readonly string[] = []) {
    const first = makeCacheDir();
    const cold = await launch(first, port, env, extra);
    assert.equal(cold.mode, "cold");
    const state = await getJson(`http://127.0.0.1:${port}/`);
    await waitForEntry(first);
    // The push runs after the checkpoint, beside the serving app: wait for its tag.
    await waitForTag(registry, env.WARMSTART_REMOTE as string);
    await cold.run.stop();
    return state;
  }

  it("a cold start with the first cache makes the second cache's first launch warm", async () => {
    const env = fleetEnv(makeFleet(), "apps/shared");
    const port = await freePort();
    const state = await coldPush(env, port);
    const second = await launch(makeCacheDir(), port, env);
    assert.equal(second.mode, "warm", second.run.stderr);
    assert.match(second.run.stderr, /pulled ws1-[0-9a-f]{64}-[0-9a-f]{16}/);
    assert.equal((await getJson(`http://127.0.0.1:${port}/`)).bootId, state.bootId);
    await second.run.stop();
  });

  it("a host that lacks a CPU feature of the dump host is refused with the reason, and the launch is cold", async () => {
    const env = fleetEnv(makeFleet(), "apps/cpu");
    const port = await freePort();
    await coldPush(env, port);
    const flag = /^flags\s*:\s*(\S+)/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "fpu";
    const second = await launch(makeCacheDir(), port, { ...env, WARMSTART_TEST_HIDE_CPU_FLAGS: flag }, [
      "--no-remote-push",
    ]);
    assert.equal(second.mode, "cold");
    assert.match(
      second.run.stderr,
      new RegExp(`remote cache: host-incompatible: .*cpu flags missing here: ${flag}`),
    );
    await second.run.stop();
  });

  it("an unsigned or untrusted snapshot is refused at pull, and the launch is cold", async () => {
    const fleet = makeFleet();
    const env = fleetEnv(fleet, "apps/trust");
    const port = await freePort();
    await coldPush(env, port);
    const stranger = makeFleet();
    const untrusted = await launch(
      makeCacheDir(),
      port,
      { ...env, WARMSTART_TRUSTED_KEYS: stranger.publicKey },
      ["--no-remote-push"],
    );
    assert.equal(untrusted.mode, "cold");
    assert.match(untrusted.run.stderr, /remote cache: untrusted: .*untrusted-key: signed by ed25519:/);
    await untrusted.run.stop();
    const pulled = cli(
      ["pull", await waitForTag(registry, env.WARMSTART_REMOTE as string), "--cache-dir", makeCacheDir()],
      {
        ...env,
        WARMSTART_TRUSTED_KEYS: stranger.publicKey,
      },
    );
    assert.equal(pulled.code, 1);
    assert.match(pulled.stderr, /pull refused: untrusted/);
  });

  it("an encrypted push holds no plaintext of the app's memory; a wrong identity is refused and the launch is cold", async () => {
    const fleet = makeFleet();
    const identity = join(fleet.dir, "identity.txt");
    const made = cli(["keygen", "--age", "-o", identity]);
    const recipient = /recipient: (\S+)/.exec(made.stderr)?.[1] ?? "";
    const secret = `warmstart-secret-${Math.random().toString(36).slice(2)}-in-memory`;
    const env = { ...fleetEnv(fleet, "apps/sealed"), WARMSTART_ENCRYPT_TO: recipient, APP_SECRET: secret };
    const port = await freePort();
    const state = await coldPush(env, port);
    const blobs = await readSnapshotBlobs(registry, env.WARMSTART_REMOTE as string);
    assert.ok(blobs.length >= 2);
    for (const blob of blobs) assert.ok(!blob.includes(secret), "a registry blob holds the app's secret");
    assert.ok(
      !blobs.some((blob) => blob.includes(Buffer.from(SERVER))),
      "a registry blob holds the command line",
    );

    const wrong = join(fleet.dir, "wrong.txt");
    cli(["keygen", "--age", "-o", wrong]);
    const refused = await launch(makeCacheDir(), port, { ...env, WARMSTART_IDENTITY: wrong }, [
      "--no-remote-push",
    ]);
    assert.equal(refused.mode, "cold");
    assert.match(refused.run.stderr, /remote cache: decrypt-failed: .*no configured identity decrypts/);
    await refused.run.stop();

    const right = await launch(makeCacheDir(), port, { ...env, WARMSTART_IDENTITY: identity }, [
      "--no-remote-push",
    ]);
    assert.equal(right.mode, "warm", right.run.stderr);
    assert.equal((await getJson(`http://127.0.0.1:${port}/`)).bootId, state.bootId);
    await right.run.stop();
  });

  it("a plaintext push does hold the app's memory (the check above can see it)", async () => {
    const fleet = makeFleet();
    const secret = `warmstart-plain-${Math.random().toString(36).slice(2)}-in-memory`;
    const env = { ...fleetEnv(fleet, "apps/plain"), APP_SECRET: secret };
    await coldPush(env, await freePort());
    const blobs = await readSnapshotBlobs(registry, env.WARMSTART_REMOTE as string);
    assert.ok(blobs.some((blob) => blob.includes(secret)));
    assert.ok(blobs.some((blob) => blob.includes(Buffer.from(SERVER))));
  });

  it("a registry that never answers, or answers garbage, costs one warning and a cold start", async () => {
    const silent = createServer(() => {});
    const garbage = createHttpServer((_req, res) => res.end("<html>not a registry</html>"));
    await Promise.all(
      [silent, garbage].map(
        (server) => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)),
      ),
    );
    try {
      for (const [server, expected] of [
        [silent, /remote cache: timeout: the registry did not answer in time/],
        [garbage, /remote cache: bad-response: tags\/list is not JSON/],
      ] as const) {
        const address = server.address() as AddressInfo;
        const remote = `oci://127.0.0.1:${address.port}/apps/odd`;
        const env = {
          ...fleetEnv(makeFleet(), "x"),
          WARMSTART_REMOTE: remote,
          WARMSTART_REMOTE_TIMEOUT: "3",
        };
        const run = await launch(makeCacheDir(), await freePort(), env, ["--no-remote-push"]);
        assert.equal(run.mode, "cold");
        assert.match(run.run.stderr, expected);
        await run.run.stop();
      }
    } finally {
      silent.close();
      garbage.close();
    }
  });

  it("a registry that is down costs one warning and a cold start", async () => {
    const down = `oci://127.0.0.1:${await freePort()}/apps/none`;
    const fleet = makeFleet();
    const port = await freePort();
    const run = await launch(makeCacheDir(), port, { ...fleetEnv(fleet, "x"), WARMSTART_REMOTE: down });
    assert.equal(run.mode, "cold");
    assert.match(run.run.stderr, /remote cache: unreachable: cannot reach the registry/);
    await run.run.stop();
  });
});

/** The one warmstart tag of a repository, once it is there. */
async function waitForTag(registry: TestRegistry, remote: string): Promise<string> {
  const repository = remote.replace(/^oci:\/\/[^/]+\//, "");
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://${registry.address}/v2/${repository}/tags/list`);
      if (response.status === 200) {
        const tags = ((await response.json()) as { tags?: string[] }).tags ?? [];
        if (tags[0]) return tags[0];
      }
    } catch {
      // Not yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`no tag in ${remote}`);
}
