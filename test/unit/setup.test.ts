// warmstart setup's choices, without apt or a compiler: which CRIU it builds from what the
// archive carries, what it says when nothing fits, where it finds the archive.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { listCriuCandidates } from "../../src/criu/find-criu.js";
import {
  type CriuRelease,
  describeMissingRelease,
  parseShowsrc,
  parseUpstreamVersion,
  selectCriuRelease,
} from "../../src/setup/criu-release.js";
import { findArchiveUri } from "../../src/setup/debian-archive.js";

const release = (debianVersion: string): CriuRelease => {
  const version = parseUpstreamVersion(debianVersion);
  assert.ok(version);
  return { debianVersion, version };
};

describe("CRIU releases", () => {
  test("upstream versions from Debian's: epoch and revision dropped, a missing patch is 0", () => {
    assert.equal(parseUpstreamVersion("4.2.1-1")?.text, "4.2.1");
    assert.equal(parseUpstreamVersion("4.3-1~exp2")?.text, "4.3.0");
    assert.equal(parseUpstreamVersion("1:4.2.1-1~bpo13+1")?.text, "4.2.1");
    assert.equal(parseUpstreamVersion("unknown"), undefined);
  });

  test("apt-cache showsrc: each criu version once, newest first", () => {
    const block = (version: string, pkg = "criu") =>
      `Package: ${pkg}\nBinary: criu, libcriu2\nVersion: ${version}\nDirectory: pool/main/c/criu\n`;
    const output = [
      block("4.2.1-1"),
      block("4.3-1~exp2"),
      block("4.1.1-1"),
      block("4.2.1-1"),
      block("9.9-1", "crius"),
    ].join("\n");
    assert.deepEqual(
      parseShowsrc(output).map((r) => r.debianVersion),
      ["4.3-1~exp2", "4.2.1-1", "4.1.1-1"],
    );
  });

  test("the tested series wins over a newer release; the newer one only when untested ones are allowed", () => {
    const available = ["4.3-1~exp2", "4.2.1-1", "4.2.0-2", "4.1.1-1"].map(release);
    const tested = selectCriuRelease(available, false);
    assert.ok(tested.found);
    assert.equal(tested.release.debianVersion, "4.2.1-1");
    assert.equal(tested.isTested, true);
    const newest = selectCriuRelease(available, true);
    assert.ok(newest.found);
    assert.equal(newest.release.debianVersion, "4.3-1~exp2");
    assert.equal(newest.isTested, false);
  });

  test("an archive that moved past the tested series: says so, offers --criu-source and --allow-untested", () => {
    const choice = selectCriuRelease(["4.3-1", "4.1.1-1"].map(release), false);
    assert.ok(!choice.found);
    assert.equal(choice.reason, "no-tested-release");
    assert.equal(
      describeMissingRelease(choice),
      "Debian's archive no longer carries a CRIU of the series warmstart was tested with (4.2.x); it carries 4.3.0, 4.1.1. " +
        "Download CRIU 4.2.x's source tarball (criu.org lists the releases) and run: warmstart setup --criu-source <file>; " +
        "or build 4.3.0 anyway with --allow-untested.",
    );
  });

  test("an archive with nothing new enough: --allow-untested does not help, --criu-source does", () => {
    const choice = selectCriuRelease(["4.1.1-1", "3.17.1-2"].map(release), true);
    assert.ok(!choice.found);
    assert.equal(choice.reason, "no-supported-release");
    assert.equal(
      describeMissingRelease(choice),
      "Debian's archive carries no CRIU >= 4.2 (it carries 4.1.1, 3.17.1). " +
        "Download CRIU 4.2.x's source tarball (criu.org lists the releases) and run: warmstart setup --criu-source <file>.",
    );
  });
});

describe("the Debian archive", () => {
  test("found in deb822 .sources and one-line .list files; other repositories are not it", () => {
    const deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n";
    const list =
      "deb [arch=amd64] https://packages.example.com/apt stable main\ndeb http://archive.example/debian/ bookworm main\n";
    assert.equal(findArchiveUri([deb822]), "http://mirror.example/debian");
    assert.equal(findArchiveUri([list]), "http://archive.example/debian/");
    assert.equal(findArchiveUri(["deb https://packages.example.com/apt stable main\n"]), undefined);
  });
});

describe("finding criu", () => {
  test("the criu setup --prefix recorded comes right after $WARMSTART_CRIU, before PATH", () => {
    assert.deepEqual(listCriuCandidates({ PATH: "/usr/bin" }, "/opt/criu/sbin/criu"), [
      "/opt/criu/sbin/criu",
      "/usr/bin/criu",
      "/usr/local/sbin/criu",
      "/usr/sbin/criu",
      "/sbin/criu",
    ]);
    assert.deepEqual(
      listCriuCandidates({ WARMSTART_CRIU: "/x/criu", PATH: "/usr/bin" }, "/opt/criu/sbin/criu"),
      ["/x/criu"],
    );
  });
});
