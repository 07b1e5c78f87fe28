import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import {
  type CriuVersion,
  criuRecordPath,
  findCriu,
  isCriuVersionSupported,
  isCriuVersionTested,
  MIN_CRIU_VERSION,
  TESTED_CRIU_TEXT,
} from "../criu/find-criu.js";
import { WarmstartError } from "../errors.js";
import { buildCriu, defaultBuildCacheDir } from "./criu-build.js";
import { probeCriu } from "./criu-probe.js";
import { describeMissingRelease, selectCriuRelease } from "./criu-release.js";
import { readTarballVersion } from "./criu-source.js";
import { findArchiveUri, PrivateSourceIndex, readAptSources } from "./debian-archive.js";
import { runTool } from "./run-tool.js";

export const DEFAULT_PREFIX = "/usr/local";

export interface SetupOptions {
  /** CRIU goes to `<prefix>/sbin/criu`. Default /usr/local. A non-default prefix is recorded,
   * so that warmstart finds that criu before any other (see criuRecordPath). */
  readonly prefix?: string;
  /** A CRIU source tarball to build instead of the one from Debian's archive. */
  readonly criuSource?: string;
  /** Build and install even when a working CRIU is already there. */
  readonly isForced?: boolean;
  /** Build a release newer than the tested series when the source offers one. */
  readonly isUntestedAllowed?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  /** Finished builds, reused for the same tarball. Default: $XDG_CACHE_HOME/warmstart-setup. */
  readonly buildCacheDir?: string;
  readonly onProgress?: (message: string) => void;
}

export type SetupOutcome =
  | {
      readonly isInstalled: false;
      readonly reason: "already-working";
      readonly criuPath: string;
      readonly version: CriuVersion;
      readonly isTested: boolean;
    }
  | {
      readonly isInstalled: true;
      readonly criuPath: string;
      readonly version: CriuVersion;
      readonly isTested: boolean;
      readonly isBuildReused: boolean;
      /** Where warmstart records a non-default prefix's criu; undefined for the default. */
      readonly recordPath: string | undefined;
    };

/** The packages `make criu` needs on Debian (CRIU's own Build-Depends, less its docs and Python). */
export const BUILD_DEPENDENCIES = [
  "build-essential",
  "pkgconf",
  "libbsd-dev",
  "libcap-dev",
  "libgnutls28-dev",
  "libnet1-dev",
  "libnftables-dev",
  "libnl-3-dev",
  "libprotobuf-c-dev",
  "libprotobuf-dev",
  "protobuf-c-compiler",
  "protobuf-compiler",
  "uuid-dev",
  "python3-protobuf",
  "xz-utils",
] as const;

/**
 * `warmstart setup`: makes a working CRIU of the tested series available. Does nothing when
 * the criu warmstart would use (or the one in `prefix`) already passes the probe.
 */
export async function installCriu(options: SetupOptions = {}): Promise<SetupOutcome> {
  const env = options.env ?? process.env;
  const say = options.onProgress ?? (() => {});
  const prefix = resolve(options.prefix ?? DEFAULT_PREFIX);
  const target = join(prefix, "sbin", "criu");
  if (process.getuid?.() !== 0) {
    throw new WarmstartError("setup-failed", "warmstart setup must run as root.", {
      hint: "try: sudo warmstart setup (CRIU itself needs root to checkpoint)",
    });
  }
  if (!options.isForced && options.criuSource === undefined) {
    const existing = await findExisting(options.prefix === undefined ? undefined : target, env);
    if (existing) {
      const probe = await probeCriu(existing);
      if (probe.isWorking) {
        const isTested = isCriuVersionTested(probe.version);
        return {
          isInstalled: false,
          reason: "already-working",
          criuPath: existing,
          version: probe.version,
          isTested,
        };
      }
      say(`${probe.problem}: installing CRIU ${TESTED_CRIU_TEXT}`);
    }
  }
  const work = mkdtempSync(join(tmpdir(), "warmstart-setup-"));
  try {
    const source = options.criuSource
      ? await checkTarball(resolve(options.criuSource), options.isUntestedAllowed === true)
      : await fetchFromArchive(work, options.isUntestedAllowed === true, say);
    await installBuildDependencies(say);
    const build = await buildCriu({
      tarball: source.tarball,
      version: source.version,
      buildCacheDir: options.buildCacheDir ?? defaultBuildCacheDir(env),
      isForced: options.isForced === true,
      onProgress: say,
    });
    installExecutable(build.criuPath, target);
    say(`installed ${target}`);
    const probe = await probeCriu(target);
    if (!probe.isWorking) {
      throw new WarmstartError(
        "setup-failed",
        `The CRIU just installed does not work here: ${probe.problem}.`,
        {
          hint: "'warmstart doctor' shows what the kernel lacks",
        },
      );
    }
    const recordPath = options.prefix === undefined ? undefined : criuRecordPath(env);
    updateRecord(recordPath, criuRecordPath(env), target, probe.version);
    return {
      isInstalled: true,
      criuPath: target,
      version: probe.version,
      isTested: isCriuVersionTested(probe.version),
      isBuildReused: build.isReused,
      recordPath,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function findExisting(
  prefixed: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  if (prefixed !== undefined) return existsSync(prefixed) ? prefixed : undefined;
  const found = await findCriu(env);
  return found.found ? found.criu.path : "path" in found ? found.path : undefined;
}

async function checkTarball(tarball: string, isUntestedAllowed: boolean) {
  if (!existsSync(tarball)) {
    throw new WarmstartError(
      "invalid-option",
      `Expected --criu-source to be a CRIU source tarball, got ${JSON.stringify(tarball)}, which does not exist.`,
    );
  }
  const version = await readTarballVersion(tarball);
  if (!isCriuVersionSupported(version)) {
    throw new WarmstartError(
      "setup-failed",
      `${tarball} holds CRIU ${version.text}; warmstart needs >= ${MIN_CRIU_VERSION.major}.${MIN_CRIU_VERSION.minor} and was tested with ${TESTED_CRIU_TEXT}.`,
    );
  }
  if (!isCriuVersionTested(version) && !isUntestedAllowed) {
    throw new WarmstartError(
      "setup-failed",
      `${tarball} holds CRIU ${version.text}, which warmstart was not tested with (tested: ${TESTED_CRIU_TEXT}).`,
      { hint: "give a tarball of the tested series, or add --allow-untested to build it anyway" },
    );
  }
  return { tarball, version };
}

async function fetchFromArchive(work: string, isUntestedAllowed: boolean, say: (message: string) => void) {
  const archiveUri = findArchiveUri(readAptSources());
  if (!archiveUri) {
    throw new WarmstartError(
      "setup-failed",
      "Found no Debian archive in apt's sources (/etc/apt/sources.list{,.d}).",
      {
        hint: "add Debian's main archive to apt's sources, or build from a tarball: warmstart setup --criu-source <file>",
      },
    );
  }
  say(`reading CRIU's source versions from the Debian archive this machine uses (${archiveUri})`);
  const index = new PrivateSourceIndex(join(work, "apt"), archiveUri);
  await index.update();
  const choice = selectCriuRelease(await index.listCriuReleases(), isUntestedAllowed);
  if (!choice.found) throw new WarmstartError("setup-failed", describeMissingRelease(choice));
  const { release } = choice;
  say(
    `fetching criu ${release.debianVersion}${choice.isTested ? "" : ` (not tested: warmstart was tested with ${TESTED_CRIU_TEXT})`}`,
  );
  return { tarball: await index.downloadOrigTarball(release), version: release.version };
}

async function installBuildDependencies(say: (message: string) => void): Promise<void> {
  const query = await runTool("dpkg-query", [
    "-W",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not JavaScript's
    "-f=${Package} ${db:Status-Abbrev}\\n",
    ...BUILD_DEPENDENCIES,
  ]);
  const installed = new Set(
    query.output
      .split("\n")
      .filter((line) => / ii\s*$/.test(line))
      .map((line) => line.split(" ")[0]),
  );
  const missing = BUILD_DEPENDENCIES.filter((name) => !installed.has(name));
  if (missing.length === 0) return;
  say(`installing build dependencies: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  // Other apt users (unattended upgrades) may hold the lock: wait for it rather than fail.
  const lock = ["-o", "DPkg::Lock::Timeout=600"];
  const update = await runTool("apt-get", [...lock, "update", "-qq"], { env });
  if (update.exitCode !== 0)
    throw new WarmstartError("setup-failed", `apt-get update failed: ${update.tail}`);
  const install = await runTool(
    "apt-get",
    [...lock, "install", "-y", "-qq", "--no-install-recommends", ...missing],
    { env },
  );
  if (install.exitCode !== 0) {
    throw new WarmstartError(
      "setup-failed",
      `Could not install the build dependencies (${missing.join(" ")}): ${install.tail}`,
    );
  }
}

/** Copied beside the target and renamed over it: a running criu keeps its old file. */
function installExecutable(source: string, target: string): void {
  mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
  const staged = `${target}.warmstart-${process.pid}`;
  copyFileSync(source, staged);
  chmodSync(staged, 0o755);
  renameSync(staged, target);
}

/**
 * A non-default prefix is recorded so later launches use that criu without PATH or
 * $WARMSTART_CRIU; installing into the default prefix removes an earlier record.
 */
function updateRecord(
  recordPath: string | undefined,
  defaultRecordPath: string,
  criuPath: string,
  version: CriuVersion,
): void {
  if (recordPath === undefined) {
    rmSync(defaultRecordPath, { force: true });
    return;
  }
  mkdirSync(dirname(recordPath), { recursive: true, mode: 0o700 });
  const staged = `${recordPath}.${process.pid}`;
  writeFileSync(
    staged,
    `${JSON.stringify({ path: criuPath, version: version.text, installedAt: new Date().toISOString() }, null, 2)}\n`,
    { mode: 0o600 },
  );
  renameSync(staged, recordPath);
}
