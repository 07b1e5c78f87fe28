import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** What warmstart uses of koffi's native module (the same API its JS wrapper re-exports). */
export type KoffiNative = Pick<typeof import("koffi"), "load" | "errno">;

export const KOFFI_NATIVE_FILE = "koffi.node";

/**
 * koffi ships its native module in one optional package per platform. warmstart loads that
 * file itself (process.dlopen), as the app runtime does: `require("koffi")` first detects
 * the platform and evaluates its wrapper, 13-14 ms on these machines against 3-4 ms for the
 * dlopen, and the restore's pipes pay it on every warm launch.
 */
export function findKoffiNative(): string {
  platformDir ??= findPlatformDir();
  const native = join(platformDir, KOFFI_NATIVE_FILE);
  if (!existsSync(native)) throw new Error(`${native} is missing`);
  return native;
}

/** Where koffi's package keeps this platform's module: resolved once per process, since every
 * lookup of serve asks (hasRuntimeSources) and the resolution and /lib's listing cost ~0.4 ms. */
let platformDir: string | undefined;

function findPlatformDir(): string {
  const require = createRequire(import.meta.url);
  const platform = `${process.platform}-${process.arch}`;
  let packageDir: string;
  try {
    packageDir = dirname(require.resolve(`@koromix/koffi-${platform}/package.json`));
  } catch {
    throw new Error(`koffi has no native module installed for ${platform} (@koromix/koffi-${platform})`);
  }
  const libc = isMusl() ? "musl" : process.platform;
  return join(packageDir, `${libc}_${process.arch}`);
}

let native: KoffiNative | undefined;

/** koffi's native module, loaded once per process. */
export function loadKoffiNative(): KoffiNative {
  if (native) return native;
  const module = { exports: {} as KoffiNative };
  process.dlopen(module, findKoffiNative());
  native = module.exports;
  return native;
}

/** musl's dynamic loader is /lib/ld-musl-<arch>.so.1 (process.report would say, in ~6 ms). */
function isMusl(): boolean {
  try {
    return readdirSync("/lib").some((name) => name.startsWith("ld-musl-"));
  } catch {
    return false;
  }
}
