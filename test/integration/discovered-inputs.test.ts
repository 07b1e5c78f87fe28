// Issue 10: the files an app reads while it starts are discovered (fanotify), not only
// declared: editing any of them makes the next launch cold, and it serves the new content;
// a `touch`, a log the app appends to and a file it rewrites at startup do not.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  freePort,
  getJson,
  listEntries,
  makeTempDir,
  newCache,
  readReports,
  runArgs,
  useIntegrationRig,
  WarmstartRun,
} from "./rig.js";

useIntegrationRig();

interface App {
  readonly dir: string;
  readonly cacheDir: string;
  readonly reportFile: string;
  readonly port: number;
  readonly command: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly extra: readonly string[];
}

interface Launched {
  readonly mode: string;
  readonly stderr: string;
  readonly body: Record<string, unknown>;
}

/** One launch until ready (and, when cold, until its snapshot is saved), asked once, stopped. */
async function launchOnce(
  app: App,
  options: { prefix?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<Launched> {
  const run = new WarmstartRun(
    runArgs(app.cacheDir, app.reportFile, [`tcp:127.0.0.1:${app.port}`], app.command, app.extra),
    { PORT: String(app.port), ...app.env, ...options.env },
    options.prefix,
  );
  const [, mode = ""] = await run.waitFor(/ready, (cold|warm), pid/, "stderr", 60_000);
  const body = await getJson(`http://127.0.0.1:${app.port}/`);
  if (mode === "cold")
    await run.waitFor(/snapshot saved|no snapshot taken|snapshot failed/, "stderr", 60_000);
  await run.stop();
  assert.equal(readReports(app.reportFile).at(-1)?.mode, mode);
  return { mode, stderr: run.stderr, body };
}

async function assertWarm(app: App, expected: Record<string, unknown>, options = {}): Promise<void> {
  const launched = await launchOnce(app, options);
  assert.equal(launched.mode, "warm", launched.stderr);
  assert.deepEqual(launched.body, expected);
}

async function assertColdBecause(
  app: App,
  reason: RegExp,
  expected: Record<string, unknown>,
  options = {},
): Promise<void> {
  const launched = await launchOnce(app, options);
  assert.equal(launched.mode, "cold", launched.stderr);
  assert.match(launched.stderr, reason);
  assert.match(launched.stderr, /snapshot saved/);
  assert.deepEqual(launched.body, expected);
}

const NODE_APP = `
const fs = require("node:fs");
const http = require("node:http");
const db = require("./lib/db.cjs");
const config = JSON.parse(fs.readFileSync(__dirname + "/config.json", "utf8"));
fs.appendFileSync(__dirname + "/app.log", "started " + process.pid + "\\n");
fs.writeFileSync(__dirname + "/state.txt", "started at " + Date.now() + "\\n");
const entry = "entry-v1";
import("./esm/greeting.mjs").then(({ greeting }) => {
  // A slow start: a warm launch must be faster, or warmstart rightly starts it cold.
  setTimeout(() => {
    http
      .createServer((req, res) => res.end(JSON.stringify({ entry, db, config, greeting })))
      .listen(Number(process.env.PORT), "127.0.0.1");
  }, 600);
});
`;

async function makeNodeApp(): Promise<App> {
  const dir = makeTempDir("warmstart-inputs-app-");
  mkdirSync(join(dir, "lib"));
  mkdirSync(join(dir, "esm"));
  writeFileSync(join(dir, "server.cjs"), NODE_APP);
  writeFileSync(join(dir, "lib/db.cjs"), 'module.exports = "db-v1";\n');
  writeFileSync(join(dir, "esm/greeting.mjs"), 'export const greeting = "hello-v1";\n');
  writeFileSync(join(dir, "config.json"), '{"level": 1}\n');
  return {
    dir,
    ...newCache(),
    port: await freePort(),
    command: ["node", join(dir, "server.cjs")],
    env: {},
    extra: [],
  };
}

describe("discovered inputs", () => {
  test("editing the entry script, a CommonJS module, an ES module or a JSON file read at startup misses and serves the new code", async () => {
    const app = await makeNodeApp();
    let expected: Record<string, unknown> = {
      entry: "entry-v1",
      db: "db-v1",
      config: { level: 1 },
      greeting: "hello-v1",
    };
    await assertColdBecause(app, /miss: no snapshot of this command yet/, expected);
    await assertWarm(app, expected);

    // The app appended to its log and rewrote state.txt on each start: outputs, not inputs.
    await assertWarm(app, expected);

    // A touch changes the stat, not the bytes: still warm (and the next launch too).
    const later = new Date(Date.now() + 5000);
    utimesSync(join(app.dir, "lib/db.cjs"), later, later);
    await assertWarm(app, expected);
    await assertWarm(app, expected);

    writeFileSync(join(app.dir, "lib/db.cjs"), 'module.exports = "db-v2";\n');
    expected = { ...expected, db: "db-v2" };
    await assertColdBecause(app, /miss: \S+\/lib\/db\.cjs changed/, expected);
    await assertWarm(app, expected);

    writeFileSync(join(app.dir, "esm/greeting.mjs"), 'export const greeting = "hello-v2";\n');
    expected = { ...expected, greeting: "hello-v2" };
    await assertColdBecause(app, /miss: \S+\/esm\/greeting\.mjs changed/, expected);
    await assertWarm(app, expected);

    writeFileSync(join(app.dir, "config.json"), '{"level": 2}\n');
    expected = { ...expected, config: { level: 2 } };
    await assertColdBecause(app, /miss: \S+\/config\.json changed/, expected);
    await assertWarm(app, expected);

    writeFileSync(join(app.dir, "server.cjs"), NODE_APP.replace("entry-v1", "entry-v2"));
    expected = { ...expected, entry: "entry-v2" };
    await assertColdBecause(app, /miss: \S+\/server\.cjs changed/, expected);
    await assertWarm(app, expected);
  });

  test("a package installed nearer than the one the app loaded (a module lookup that failed at cold start) misses and is loaded", async () => {
    const app = await makeNodeApp();
    // server.cjs in sub/ requires "greeter", found in the parent's node_modules: the lookup in
    // sub/node_modules failed first, and no file was opened there for fanotify to see.
    mkdirSync(join(app.dir, "sub"));
    mkdirSync(join(app.dir, "node_modules/greeter"), { recursive: true });
    writeFileSync(join(app.dir, "node_modules/greeter/index.js"), 'module.exports = "parent";\n');
    writeFileSync(
      join(app.dir, "sub/server.cjs"),
      NODE_APP.replace('require("./lib/db.cjs")', 'require("greeter")')
        .replace('import("./esm/', 'import("../esm/')
        .replaceAll("__dirname + ", '__dirname + "/.." + '),
    );
    const nested = { ...app, command: ["node", join(app.dir, "sub/server.cjs")] };
    const expected = { entry: "entry-v1", db: "parent", config: { level: 1 }, greeting: "hello-v1" };
    await assertColdBecause(nested, /miss: no snapshot of this command yet/, expected);
    await assertWarm(nested, expected);
    mkdirSync(join(app.dir, "sub/node_modules/greeter"), { recursive: true });
    writeFileSync(join(app.dir, "sub/node_modules/greeter/index.js"), 'module.exports = "nearer";\n');
    await assertColdBecause(nested, /miss: \S+\/sub\/node_modules\/greeter appeared/, {
      ...expected,
      db: "nearer",
    });
    await assertWarm(nested, { ...expected, db: "nearer" });
  });

  test("a snapshot whose inputs changed is checked during its restore and never runs: the old code does nothing", async () => {
    // The inputs are checked while CRIU restores, the copy left stopped until they hold. Any
    // moment the old copy ran would show: its 1 ms timer, overdue after the restore, would
    // log "v1". Without the runtime nothing else holds it back.
    const dir = makeTempDir("warmstart-inputs-stopped-");
    const ticks = join(dir, "ticks.log");
    const server = (version: string) =>
      `const fs = require("node:fs");
const version = require("./version.cjs");
setTimeout(() => {
  require("node:http").createServer((q, s) => s.end(JSON.stringify({ version }))).listen(Number(process.env.PORT), "127.0.0.1");
  setInterval(() => fs.appendFileSync(${JSON.stringify(ticks)}, version + "\\n"), 1);
}, 600);
// ${version}
`;
    writeFileSync(join(dir, "server.cjs"), server("a"));
    writeFileSync(join(dir, "version.cjs"), 'module.exports = "v1";\n');
    const app: App = {
      dir,
      ...newCache(),
      port: await freePort(),
      command: ["node", join(dir, "server.cjs")],
      env: {},
      extra: ["--no-runtime"],
    };
    await assertColdBecause(app, /miss: no snapshot of this command yet/, { version: "v1" });
    const warm = await launchOnce(app);
    assert.equal(warm.mode, "warm", warm.stderr);
    assert.match(warm.stderr, /inputs unchanged in [\d.]+ ms, during the restore/);
    writeFileSync(join(dir, "version.cjs"), 'module.exports = "v2";\n');
    const before = readFileSync(ticks, "utf8").length;
    await assertColdBecause(app, /miss: \S+\/version\.cjs changed/, { version: "v2" });
    const since = readFileSync(ticks, "utf8").slice(before).split("\n").filter(Boolean);
    assert.ok(since.length > 0, "the new copy ticks");
    assert.deepEqual(new Set(since), new Set(["v2"]), "the stale copy ran");
  });

  test("--watch watches the discovered inputs: an edit removes the stale snapshot", async () => {
    const app = await makeNodeApp();
    const serving = new WarmstartRun(
      runArgs(app.cacheDir, app.reportFile, [`tcp:127.0.0.1:${app.port}`], app.command, ["--watch"]),
      { PORT: String(app.port) },
    );
    await serving.waitFor(/snapshot saved/, "stderr", 60_000);
    assert.equal(listEntries(app.cacheDir).length, 1);
    writeFileSync(join(app.dir, "lib/db.cjs"), 'module.exports = "db-v2";\n');
    await serving.waitFor(/lib\/db\.cjs changed: the snapshot is stale and was removed/, "stderr");
    assert.deepEqual(listEntries(app.cacheDir), []);
    await serving.stop();
  });

  test("without fanotify (WARMSTART_INPUT_RECORDER=proc) the inputs come from /proc at dump time, and -v, ls and doctor say so", async () => {
    const app = await makeNodeApp();
    const procApp = { ...app, env: { WARMSTART_INPUT_RECORDER: "proc" } };
    const expected = { entry: "entry-v1", db: "db-v1", config: { level: 1 }, greeting: "hello-v1" };
    const cold = await launchOnce(procApp);
    assert.equal(cold.mode, "cold", cold.stderr);
    assert.match(
      cold.stderr,
      /inputs: \d+ files found in \/proc at dump time \(fanotify unavailable: WARMSTART_INPUT_RECORDER=proc\)/,
    );
    await assertWarm(procApp, expected);
    // The entry script is an argument that names a file: still an input.
    writeFileSync(join(app.dir, "server.cjs"), NODE_APP.replace("entry-v1", "entry-v2"));
    await assertColdBecause(procApp, /miss: \S+\/server\.cjs changed/, { ...expected, entry: "entry-v2" });

    const listed = new WarmstartRun(["ls", "--cache-dir", app.cacheDir]);
    await listed.exited;
    assert.match(listed.stdout, /\d+ \(proc\)$/m);
    const doctor = new WarmstartRun(["doctor"], { WARMSTART_INPUT_RECORDER: "proc" });
    await doctor.exited;
    assert.match(
      doctor.stdout,
      /^missing input recording +\/proc at dump time only \(WARMSTART_INPUT_RECORDER=proc\)/m,
    );
  });

  test("a changed shared library the app maps misses", async () => {
    const app = await makeNodeApp();
    // Any ELF library still loads with bytes appended: a change that keeps it loadable.
    const library = join(app.dir, "libpreloaded.so");
    copyFileSync("/usr/lib/x86_64-linux-gnu/libz.so.1", library);
    const withLibrary = { ...app, env: { LD_PRELOAD: library } };
    const expected = { entry: "entry-v1", db: "db-v1", config: { level: 1 }, greeting: "hello-v1" };
    await assertColdBecause(withLibrary, /miss: no snapshot/, expected);
    await assertWarm(withLibrary, expected);
    appendFileSync(library, Buffer.alloc(64, 1));
    await assertColdBecause(withLibrary, /miss: \S+\/libpreloaded\.so changed/, expected);
    await assertWarm(withLibrary, expected);
  });

  test("--input-ignore leaves out a file that changes without mattering", async () => {
    const app = await makeNodeApp();
    const ignoring = { ...app, extra: ["--input-ignore", `${app.dir}/*.json`] };
    const expected = { entry: "entry-v1", db: "db-v1", config: { level: 1 }, greeting: "hello-v1" };
    await assertColdBecause(ignoring, /miss: no snapshot/, expected);
    writeFileSync(join(app.dir, "config.json"), '{"level": 2}\n');
    // The snapshot's config stays: the user said it does not matter.
    await assertWarm(ignoring, expected);
  });

  test("a different CPU affinity misses, and -v says so", async () => {
    const app = await makeNodeApp();
    const expected = { entry: "entry-v1", db: "db-v1", config: { level: 1 }, greeting: "hello-v1" };
    await assertColdBecause(app, /miss: no snapshot/, expected);
    await assertWarm(app, expected);
    await assertColdBecause(app, /miss: cpusAllowed changed \(\d+ -> 1\)/, expected, {
      prefix: ["taskset", "-c", "0"],
    });
    await assertWarm(app, expected, { prefix: ["taskset", "-c", "0"] });
  });

  test("a different memory limit misses, and -v says so", async () => {
    const app = await makeNodeApp();
    const expected = { entry: "entry-v1", db: "db-v1", config: { level: 1 }, greeting: "hello-v1" };
    await assertColdBecause(app, /miss: no snapshot/, expected);
    await assertWarm(app, expected);
    const cgroup = makeMemoryCgroup(6 * 1024 ** 3);
    try {
      await assertColdBecause(app, /miss: memoryLimitBytes changed \(\S+ -> 6442450944\)/, expected, {
        prefix: cgroup.prefix,
      });
      await assertWarm(app, expected, { prefix: cgroup.prefix });
    } finally {
      cgroup.remove();
    }
  });
});

describe("discovered inputs of a JVM", () => {
  const HELLO = `
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
public final class Hello {
  public static void main(String[] args) throws Exception {
    // Loaded at startup, so the snapshot holds it (a class first used later is read then).
    String greeting = Greeting.TEXT;
    Thread.sleep(600);
    HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(System.getenv("PORT"))), 0);
    server.createContext("/", exchange -> {
      byte[] body = ("{\\"greeting\\":\\"" + greeting + "\\"}").getBytes();
      exchange.sendResponseHeaders(200, body.length);
      exchange.getResponseBody().write(body);
      exchange.close();
    });
    server.start();
  }
}
`;
  const JAVA_FLAGS = ["-XX:+UseSerialGC", "-XX:-UsePerfData", "-Xshare:auto", "-Xmx128m"];

  function compile(dir: string, greeting: string): void {
    writeFileSync(
      join(dir, "src/Greeting.java"),
      // Not a compile-time constant, or javac would copy it into Hello.class.
      `final class Greeting { static final String TEXT = String.valueOf("${greeting}"); }\n`,
    );
    const javac = spawnSync(
      "javac",
      [
        "--release",
        "17",
        "-d",
        join(dir, "classes"),
        ...["Hello", "Greeting"].map((n) => join(dir, `src/${n}.java`)),
      ],
      {
        encoding: "utf8",
      },
    );
    assert.equal(javac.status, 0, javac.stderr);
    const jar = spawnSync(
      "jar",
      ["--create", "--file", join(dir, "app.jar"), "--main-class", "Hello", "-C", join(dir, "classes"), "."],
      {
        encoding: "utf8",
      },
    );
    assert.equal(jar.status, 0, jar.stderr);
  }

  async function makeJvmApp(): Promise<{ dir: string; app: Omit<App, "command"> }> {
    const dir = makeTempDir("warmstart-inputs-jvm-");
    mkdirSync(join(dir, "src"));
    writeFileSync(join(dir, "src/Hello.java"), HELLO);
    compile(dir, "hello-v1");
    return { dir, app: { dir, ...newCache(), port: await freePort(), env: {}, extra: [] } };
  }

  test("changing a class in the jar (java -jar) misses", async () => {
    const { dir, app } = await makeJvmApp();
    const jarApp = { ...app, command: ["java", ...JAVA_FLAGS, "-jar", join(dir, "app.jar")] };
    await assertColdBecause(jarApp, /miss: no snapshot/, { greeting: "hello-v1" });
    await assertWarm(jarApp, { greeting: "hello-v1" });
    compile(dir, "hello-v2");
    await assertColdBecause(jarApp, /miss: \S+\/app\.jar changed/, { greeting: "hello-v2" });
    await assertWarm(jarApp, { greeting: "hello-v2" });
  });

  test("changing a class on a classpath directory misses", async () => {
    const { dir, app } = await makeJvmApp();
    const cpApp = { ...app, command: ["java", ...JAVA_FLAGS, "-cp", join(dir, "classes"), "Hello"] };
    await assertColdBecause(cpApp, /miss: no snapshot/, { greeting: "hello-v1" });
    await assertWarm(cpApp, { greeting: "hello-v1" });
    compile(dir, "hello-v2");
    await assertColdBecause(cpApp, /miss: \S+\/classes\/Greeting\.class changed/, { greeting: "hello-v2" });
    await assertWarm(cpApp, { greeting: "hello-v2" });
  });
});

/**
 * A memory cgroup with its own limit, and a command prefix that runs a process in it
 * (cgroup v1's memory controller where it is mounted, as on these machines, else v2).
 */
function makeMemoryCgroup(limitBytes: number): { prefix: string[]; remove: () => void } {
  const name = `warmstart-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const v1 = "/sys/fs/cgroup/memory";
  const isV1 = spawnSync("test", ["-f", join(v1, "memory.limit_in_bytes")]).status === 0;
  const dir = isV1 ? join(v1, name) : join("/sys/fs/cgroup", name);
  mkdirSync(dir);
  writeFileSync(join(dir, isV1 ? "memory.limit_in_bytes" : "memory.max"), String(limitBytes));
  return {
    prefix: ["sh", "-c", `echo $$ > ${join(dir, "cgroup.procs")} && exec "$@"`, "sh"],
    remove: () => {
      // Every process of the test has left it by now (stopped runs); rmdir needs it empty.
      spawnSync("rmdir", [dir]);
    },
  };
}
