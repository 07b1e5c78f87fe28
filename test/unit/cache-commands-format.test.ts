import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  formatBytes,
  formatCommand,
  formatDirectory,
  formatDuration,
  renderTable,
} from "../../src/commands/format.js";

describe("cache command formatting", () => {
  test("sizes in powers of 1024, one decimal under 10", () => {
    assert.deepEqual(
      [0, 1023, 1024, 1536, 10 * 1024, 130 * 1024 ** 2 + 1, 10 * 1024 ** 3, 3 * 1024 ** 4].map(formatBytes),
      ["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "10 KiB", "130 MiB", "10 GiB", "3.0 TiB"],
    );
  });

  test("durations in the largest whole unit", () => {
    assert.deepEqual(
      [-5, 0, 59_999, 60_000, 3_599_999, 3_600_000, 86_399_999, 86_400_000, 30 * 86_400_000].map(
        formatDuration,
      ),
      ["0s", "0s", "59s", "1m", "59m", "1h", "23h", "1d", "30d"],
    );
  });

  test("directories with the home directory as ~", () => {
    assert.equal(formatDirectory("/root/app", "/root"), "~/app");
    assert.equal(formatDirectory("/root", "/root"), "~");
    assert.equal(formatDirectory("/rootfs/app", "/root"), "/rootfs/app");
    assert.equal(formatDirectory("/srv/app", "/"), "/srv/app");
  });

  test("commands read back by a shell", () => {
    assert.equal(
      formatCommand(["node", "/srv/app/server.js", "--port=3000"]),
      "node /srv/app/server.js --port=3000",
    );
    assert.equal(formatCommand(["sh", "-c", "echo it's"]), `sh -c 'echo it'\\''s'`);
    assert.equal(formatCommand(["app", ""]), "app ''");
  });

  test("tables: padded columns, numbers right-aligned, short rows are notes, no trailing spaces", () => {
    assert.deepEqual(
      renderTable(
        ["KEY", "COMMAND", "HITS"],
        [
          ["aaa", "node server.js", "12"],
          ["bbb", "refused: /c/v1/bbb is a symlink"],
          ["ccc", "x", "3"],
        ],
        new Set([2]),
      ),
      [
        "KEY  COMMAND         HITS",
        "aaa  node server.js    12",
        "bbb  refused: /c/v1/bbb is a symlink",
        "ccc  x                  3",
      ],
    );
  });
});
