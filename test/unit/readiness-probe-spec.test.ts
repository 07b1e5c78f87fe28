import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { describeProbe, parseProbe } from "../../src/readiness/index.js";

const TCP_ERROR =
  "to be tcp:<port> or tcp:<host>:<port>, with a port from 1 to 65535 and an IPv6 host in brackets (tcp:[::1]:3000)";
const ANY_ERROR =
  "to be a readiness probe: tcp:<port>, tcp:<host>:<port>, http://<url>, https://<url>, log:<regex>, file:<path> or notify";

describe("parseProbe", () => {
  test("tcp with a port only probes this machine", () => {
    assert.deepEqual(parseProbe("tcp:3000", "/srv/app"), { kind: "tcp", host: "localhost", port: 3000 });
  });

  test("tcp with a host, IPv6 in brackets", () => {
    assert.deepEqual(parseProbe("tcp:127.0.0.1:3000", "/"), { kind: "tcp", host: "127.0.0.1", port: 3000 });
    assert.deepEqual(parseProbe("tcp:[::1]:8080", "/"), { kind: "tcp", host: "::1", port: 8080 });
  });

  test("http and https keep the whole URL", () => {
    assert.deepEqual(parseProbe("http://127.0.0.1:3000/health?deep=1", "/"), {
      kind: "http",
      url: "http://127.0.0.1:3000/health?deep=1",
    });
    assert.deepEqual(parseProbe("https://localhost:8443/", "/"), {
      kind: "http",
      url: "https://localhost:8443/",
    });
  });

  test("log compiles the regex and keeps what was typed", () => {
    const spec = parseProbe("log:listening on port \\d+", "/");
    assert.equal(spec.kind, "log");
    assert.ok(spec.kind === "log" && spec.pattern.test("server listening on port 8080"));
    assert.ok(spec.kind === "log" && !spec.pattern.test("listening on port x"));
    assert.equal(spec.kind === "log" && spec.source, "listening on port \\d+");
  });

  test("file resolves a relative path against the app's cwd", () => {
    assert.deepEqual(parseProbe("file:run/ready.flag", "/srv/app"), {
      kind: "file",
      path: "/srv/app/run/ready.flag",
    });
    assert.deepEqual(parseProbe("file:/tmp/ready", "/srv/app"), { kind: "file", path: "/tmp/ready" });
  });

  test("notify", () => {
    assert.deepEqual(parseProbe("notify", "/"), { kind: "notify" });
  });

  const errors: [string, string][] = [
    ["tcp:70000", TCP_ERROR],
    ["tcp:0", TCP_ERROR],
    ["tcp:abc", TCP_ERROR],
    ["tcp:", TCP_ERROR],
    ["tcp:::1:80", TCP_ERROR],
    // Written like a URL, it used to be taken for the host "//localhost" and waited out.
    ["tcp://localhost:4101", 'to be tcp:<host>:<port> without "//", as in tcp:localhost:4101'],
    ["tcp:local/host:80", `${TCP_ERROR}; "local/host" is not a host name or address`],
    ["tcp:[localhost]:80", `${TCP_ERROR}; "localhost" is not a host name or address`],
    [
      "log:(",
      "to be log:<regex> with a valid JavaScript regular expression (Invalid regular expression: /(/: Unterminated group)",
    ],
    ["log:", "to be log:<regex> with a non-empty regular expression"],
    ["file:", "to be file:<path> with a non-empty path"],
    ["http://", "to be an http(s) URL such as http://127.0.0.1:3000/health (Invalid URL)"],
    ["ftp://example.com", ANY_ERROR],
    ["notify:1", ANY_ERROR],
    ["3000", ANY_ERROR],
    ["", ANY_ERROR],
  ];
  for (const [text, expected] of errors) {
    test(`rejects ${JSON.stringify(text)} naming --ready and the value`, () => {
      assert.throws(() => parseProbe(text, "/"), {
        name: "WarmstartError",
        code: "invalid-option",
        message: `Expected --ready ${expected}, got ${JSON.stringify(text)}.`,
      });
    });
  }
});

describe("parseProbe: where the value came from", () => {
  test("a config file's field is named instead of --ready", () => {
    assert.throws(
      () => parseProbe("tcp://localhost:4101", "/", '"ready" in /srv/app/warmstart.config.json'),
      {
        message:
          'Expected "ready" in /srv/app/warmstart.config.json to be tcp:<host>:<port> without "//", as in tcp:localhost:4101, got "tcp://localhost:4101".',
      },
    );
  });

  test("host names with hyphens, underscores and dots are accepted", () => {
    assert.deepEqual(parseProbe("tcp:db-1.internal:5432", "/"), {
      kind: "tcp",
      host: "db-1.internal",
      port: 5432,
    });
    assert.deepEqual(parseProbe("tcp:my_app:80", "/"), { kind: "tcp", host: "my_app", port: 80 });
  });
});

describe("describeProbe", () => {
  test("gives the CLI form back", () => {
    const forms = [
      "tcp:127.0.0.1:3000",
      "tcp:[::1]:8080",
      "http://127.0.0.1:3000/health",
      "log:ready in \\d+ms",
      "notify",
    ];
    for (const text of forms) assert.equal(describeProbe(parseProbe(text, "/")), text);
    assert.equal(describeProbe(parseProbe("tcp:3000", "/")), "tcp:localhost:3000");
    assert.equal(describeProbe(parseProbe("file:ready", "/srv/app")), "file:/srv/app/ready");
  });
});
