import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LineBuffer } from "../../src/readiness/index.js";

function collect(buffer: LineBuffer): string[] {
  const lines: string[] = [];
  buffer.onLine((line) => lines.push(line));
  return lines;
}

describe("LineBuffer", () => {
  test("joins a line split across chunks and holds a partial line until its newline", () => {
    const buffer = new LineBuffer();
    const lines = collect(buffer);
    buffer.push("hel");
    assert.deepEqual(lines, []);
    buffer.push("lo\nwor");
    assert.deepEqual(lines, ["hello"]);
    buffer.push(Buffer.from("ld\n\nlast"));
    assert.deepEqual(lines, ["hello", "world", ""]);
    assert.deepEqual(buffer.recent, ["hello", "world", ""]);
  });

  test("flush emits the trailing partial line once", () => {
    const buffer = new LineBuffer();
    const lines = collect(buffer);
    buffer.push("done\nno newline");
    buffer.flush();
    buffer.flush();
    assert.deepEqual(lines, ["done", "no newline"]);
  });

  test("strips CRLF line ends", () => {
    const buffer = new LineBuffer();
    buffer.push("one\r\ntwo\r");
    buffer.push("\n");
    assert.deepEqual(buffer.recent, ["one", "two"]);
  });

  test("decodes a UTF-8 character split between chunks", () => {
    const buffer = new LineBuffer();
    const bytes = Buffer.from("prêt\n");
    const cut = bytes.indexOf(0xc3) + 1;
    buffer.push(bytes.subarray(0, cut));
    buffer.push(bytes.subarray(cut));
    assert.deepEqual(buffer.recent, ["prêt"]);
  });

  test("keeps only the last maxRecent lines and returns a copy", () => {
    const buffer = new LineBuffer({ maxRecent: 2 });
    buffer.push("a\nb\n");
    const before = buffer.recent;
    buffer.push("c\n");
    assert.deepEqual(buffer.recent, ["b", "c"]);
    assert.deepEqual(before, ["a", "b"]);
  });

  test("an unsubscribed listener gets no more lines", () => {
    const buffer = new LineBuffer();
    const lines: string[] = [];
    const off = buffer.onLine((line) => lines.push(line));
    buffer.push("one\n");
    off();
    buffer.push("two\n");
    assert.deepEqual(lines, ["one"]);
  });

  test("cuts a line longer than maxLineLength into pieces", () => {
    const buffer = new LineBuffer({ maxLineLength: 4 });
    buffer.push("abcdefghij");
    assert.deepEqual(buffer.recent, ["abcd", "efgh"]);
    buffer.push("\n");
    assert.deepEqual(buffer.recent, ["abcd", "efgh", "ij"]);
  });

  test("rejects a bad maxRecent", () => {
    assert.throws(() => new LineBuffer({ maxRecent: -1 }), {
      code: "invalid-option",
      message: "Expected maxRecent to be a non-negative integer, got -1.",
    });
  });
});
