import { invalidOption } from "../errors.js";

const GIB = 1024 ** 3;
const SIZE_UNITS: Readonly<Record<string, number>> = { "": 1, k: 1024, m: 1024 ** 2, g: GIB, t: 1024 ** 4 };

/**
 * Parses `--max-cache-size`: bytes, or a number with K, M, G or T (powers of 1024, as the
 * 10 GiB default), optionally followed by B or iB: "1234", "500M", "1.5G", "10GiB".
 */
export function parseSize(text: string, option = "--max-cache-size"): number {
  const match = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?$/i.exec(text.trim());
  const bytes = match ? Math.floor(Number(match[1]) * (SIZE_UNITS[(match[2] ?? "").toLowerCase()] ?? 1)) : 0;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw invalidOption(
      option,
      "a positive size in bytes, or with a K, M, G or T suffix (like 500M or 10G)",
      text,
    );
  }
  return bytes;
}
