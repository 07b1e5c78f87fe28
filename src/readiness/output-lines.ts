import { StringDecoder } from "node:string_decoder";
import { invalidOption } from "../errors.js";

/** An app's output as whole lines: what `log:` probes match and what error messages quote. */
export interface OutputLines {
  /** Lines printed so far (the last few), oldest first. */
  readonly recent: readonly string[];
  /** Calls `listener` with each later line; returns the unsubscribe function. */
  onLine(listener: (line: string) => void): () => void;
}

export interface LineBufferOptions {
  /** How many of the last lines `recent` keeps. Default 50. */
  readonly maxRecent?: number;
  /**
   * A line longer than this is emitted in pieces of this length, so an app that prints
   * without newlines (progress bars, binary output) cannot grow the buffer without bound.
   * Default 65536.
   */
  readonly maxLineLength?: number;
}

/** Cuts an output stream (chunks split anywhere, even inside a UTF-8 character) into lines. */
export class LineBuffer implements OutputLines {
  readonly #maxRecent: number;
  readonly #maxLineLength: number;
  readonly #recent: string[] = [];
  readonly #listeners = new Set<(line: string) => void>();
  readonly #decoder = new StringDecoder("utf8");
  #partial = "";

  constructor(options: LineBufferOptions = {}) {
    this.#maxRecent = options.maxRecent ?? 50;
    this.#maxLineLength = options.maxLineLength ?? 65536;
    if (!Number.isInteger(this.#maxRecent) || this.#maxRecent < 0) {
      throw invalidOption("maxRecent", "a non-negative integer", options.maxRecent);
    }
    if (!Number.isInteger(this.#maxLineLength) || this.#maxLineLength < 1) {
      throw invalidOption("maxLineLength", "a positive integer", options.maxLineLength);
    }
  }

  /** A copy: a caller that keeps it must not see it change under it. */
  get recent(): readonly string[] {
    return [...this.#recent];
  }

  onLine(listener: (line: string) => void): () => void {
    // Wrapped so that the same function subscribed twice is also unsubscribed independently.
    const entry = (line: string) => listener(line);
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  push(chunk: string | Buffer): void {
    // A string after bytes: finish the bytes first so the text stays in order.
    const text = typeof chunk === "string" ? this.#decoder.end() + chunk : this.#decoder.write(chunk);
    const pieces = (this.#partial + text).split("\n");
    this.#partial = pieces.pop() ?? "";
    for (const line of pieces) this.#emit(line.endsWith("\r") ? line.slice(0, -1) : line);
    while (this.#partial.length > this.#maxLineLength) {
      this.#emit(this.#partial.slice(0, this.#maxLineLength));
      this.#partial = this.#partial.slice(this.#maxLineLength);
    }
  }

  /** Emits the last line when the stream ended without a newline. */
  flush(): void {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = "";
    if (rest !== "") this.#emit(rest);
  }

  #emit(line: string): void {
    this.#recent.push(line);
    if (this.#recent.length > this.#maxRecent) this.#recent.shift();
    for (const listener of [...this.#listeners]) listener(line);
  }
}
