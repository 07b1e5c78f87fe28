import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { criuVersion } from "../exec/command-lines.js";
import { isExecutableFile } from "../exec/executable-file.js";
import { runToCompletion } from "../exec/owned-process.js";

/** CRIU 4.2 is the first release that works here: 3.17 fails on the [vvar_vclock] vDSO
 * mapping of kernel 6.18, 4.1 cannot dump inet sockets on kernels >= 6.16. */
export const MIN_CRIU_VERSION = { major: 4, minor: 2 } as const;

/**
 * The release series warmstart's tests ran against (`warmstart setup` builds it; a newer
 * one only on request). A later CRIU may change image formats or flags under us.
 */
export const TESTED_CRIU_SERIES = { major: 4, minor: 2 } as const;

/** "4.2.x": the tested series as messages show it. */
export const TESTED_CRIU_TEXT = `${TESTED_CRIU_SERIES.major}.${TESTED_CRIU_SERIES.minor}.x`;

/** What every message that finds CRIU missing or unusable tells the user to run. */
export const CRIU_INSTALL_FIX = "run: sudo warmstart setup";

export interface CriuVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  /** As CRIU prints it, e.g. "4.2.1". */
  readonly text: string;
}

export interface CriuInstall {
  readonly path: string;
  readonly version: CriuVersion;
}

export type FindCriuOutcome =
  | { readonly found: true; readonly criu: CriuInstall }
  | { readonly found: false; readonly reason: "missing"; readonly searched: readonly string[] }
  | { readonly found: false; readonly reason: "no-version"; readonly path: string; readonly output: string }
  | {
      readonly found: false;
      readonly reason: "too-old";
      readonly path: string;
      readonly version: CriuVersion;
    };

/**
 * $WARMSTART_CRIU overrides all; then the criu `warmstart setup --prefix` installed (it
 * records where, since a prefix is rarely on PATH); then PATH order, like a shell, then the
 * sbin directories a non-root PATH often lacks (`warmstart setup` installs into
 * /usr/local/sbin by default).
 */
export function listCriuCandidates(env: NodeJS.ProcessEnv, recordedPath?: string): string[] {
  if (env.WARMSTART_CRIU) return [env.WARMSTART_CRIU];
  const dirs = [
    ...(env.PATH ?? "").split(delimiter).filter(Boolean),
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
  ];
  return [...new Set([...(recordedPath ? [recordedPath] : []), ...dirs.map((dir) => join(dir, "criu"))])];
}

/** Where `warmstart setup --prefix` records the criu it installed: per user, like a config. */
export function criuRecordPath(env: NodeJS.ProcessEnv = process.env): string {
  const configHome = env.XDG_CONFIG_HOME ? resolve(env.XDG_CONFIG_HOME) : join(homedir(), ".config");
  return join(configHome, "warmstart", "criu.json");
}

/** The recorded criu's path, or undefined when there is no (readable, well-formed) record. */
export function readRecordedCriuPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const recordPath = criuRecordPath(env);
  // Usually there is none (no `setup --prefix`): no ENOENT thrown on every launch for it.
  if (!existsSync(recordPath)) return undefined;
  let text: string;
  try {
    text = readFileSync(recordPath, "utf8");
  } catch {
    return undefined;
  }
  try {
    const record = JSON.parse(text) as { path?: unknown };
    return typeof record.path === "string" && record.path.startsWith("/") ? record.path : undefined;
  } catch {
    return undefined;
  }
}

export function parseCriuVersion(output: string): CriuVersion | undefined {
  const match = /^Version:\s*(\d+)\.(\d+)(?:\.(\d+))?/m.exec(output);
  if (!match) return undefined;
  const [, major, minor, patch] = match;
  const version = { major: Number(major), minor: Number(minor), patch: Number(patch ?? 0) };
  return { ...version, text: `${version.major}.${version.minor}.${version.patch}` };
}

export function isCriuVersionTested(version: CriuVersion): boolean {
  return version.major === TESTED_CRIU_SERIES.major && version.minor === TESTED_CRIU_SERIES.minor;
}

export function isCriuVersionSupported(version: CriuVersion): boolean {
  const min = MIN_CRIU_VERSION;
  return version.major > min.major || (version.major === min.major && version.minor >= min.minor);
}

export async function readCriuVersionOutput(path: string): Promise<string> {
  const run = await runToCompletion(criuVersion(path), { timeoutMs: 10_000, killGraceMs: 0 });
  return `${run.stdout}${run.stderr}`;
}

/** Remembers a binary's `--version` output until the binary changes (a spawn costs ~20 ms). */
export interface VersionMemo {
  memoize(path: string, purpose: string, compute: () => Promise<string>): Promise<string>;
}

/** Finds the criu binary warmstart will use and checks its version. */
export async function findCriu(
  env: NodeJS.ProcessEnv = process.env,
  memo?: VersionMemo,
): Promise<FindCriuOutcome> {
  const searched = listCriuCandidates(env, readRecordedCriuPath(env));
  const path = searched.find(isExecutableFile);
  if (!path) return { found: false, reason: "missing", searched };
  const read = () => readCriuVersionOutput(path);
  // An output without a version is not remembered: it may be a transient failure.
  let output = memo ? await memo.memoize(path, "criu-version", read) : await read();
  if (memo && !parseCriuVersion(output)) output = await read();
  const version = parseCriuVersion(output);
  if (!version) return { found: false, reason: "no-version", path, output: output.trim() };
  if (!isCriuVersionSupported(version)) return { found: false, reason: "too-old", path, version };
  return { found: true, criu: { path, version } };
}
