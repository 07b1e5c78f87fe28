import {
  type CriuVersion,
  isCriuVersionSupported,
  isCriuVersionTested,
  MIN_CRIU_VERSION,
  TESTED_CRIU_TEXT,
} from "../criu/find-criu.js";

/** One version of CRIU's source package that the Debian archive carries. */
export interface CriuRelease {
  /** As Debian spells it ("4.2.1-1", "4.3-1~exp2"): what `apt-get source criu=<v>` takes. */
  readonly debianVersion: string;
  /** The upstream release it packages. */
  readonly version: CriuVersion;
}

export type ReleaseChoice =
  | { readonly found: true; readonly release: CriuRelease; readonly isTested: boolean }
  | {
      readonly found: false;
      readonly reason: "no-tested-release" | "no-supported-release";
      /** Newest first. */
      readonly available: readonly CriuRelease[];
    };

/** "1:4.2.1-1~bpo13+1" -> 4.2.1: the epoch and the Debian revision are Debian's business. */
export function parseUpstreamVersion(debianVersion: string): CriuVersion | undefined {
  const upstream = debianVersion.replace(/^\d+:/, "").replace(/-[^-]*$/, "");
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(upstream);
  if (!match) return undefined;
  const [, major, minor, patch] = match;
  const version = { major: Number(major), minor: Number(minor), patch: Number(patch ?? 0) };
  return { ...version, text: `${version.major}.${version.minor}.${version.patch}` };
}

/** The criu source packages in `apt-cache showsrc criu`'s output, newest first, each version once. */
export function parseShowsrc(output: string): CriuRelease[] {
  const releases = new Map<string, CriuRelease>();
  for (const block of output.split(/\n\s*\n/)) {
    if (!/^Package: criu$/m.test(block)) continue;
    const debianVersion = /^Version: (\S+)$/m.exec(block)?.[1];
    const version = debianVersion ? parseUpstreamVersion(debianVersion) : undefined;
    if (debianVersion && version) releases.set(debianVersion, { debianVersion, version });
  }
  return [...releases.values()].sort((a, b) => compareVersions(b.version, a.version));
}

export function compareVersions(a: CriuVersion, b: CriuVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

/**
 * The newest release of the tested series; with `isUntestedAllowed`, the newest release
 * warmstart can work with at all. Never one older than MIN_CRIU_VERSION.
 */
export function selectCriuRelease(
  available: readonly CriuRelease[],
  isUntestedAllowed: boolean,
): ReleaseChoice {
  const sorted = [...available].sort((a, b) => compareVersions(b.version, a.version));
  const supported = sorted.filter((release) => isCriuVersionSupported(release.version));
  const pick = isUntestedAllowed
    ? supported[0]
    : supported.find((release) => isCriuVersionTested(release.version));
  if (pick) return { found: true, release: pick, isTested: isCriuVersionTested(pick.version) };
  return {
    found: false,
    reason: supported.length > 0 ? "no-tested-release" : "no-supported-release",
    available: sorted,
  };
}

/** What to tell the user when the archive has no release setup may build on its own. */
export function describeMissingRelease(choice: Extract<ReleaseChoice, { found: false }>): string {
  const carried =
    choice.available.length > 0
      ? `it carries ${choice.available.map((release) => release.version.text).join(", ")}`
      : "it carries none";
  const min = `${MIN_CRIU_VERSION.major}.${MIN_CRIU_VERSION.minor}`;
  const newer = choice.available.find((release) => isCriuVersionSupported(release.version));
  return choice.reason === "no-tested-release"
    ? `Debian's archive no longer carries a CRIU of the series warmstart was tested with (${TESTED_CRIU_TEXT}); ${carried}. ` +
        `Download CRIU ${TESTED_CRIU_TEXT}'s source tarball (criu.org lists the releases) and run: warmstart setup --criu-source <file>; ` +
        `or build ${newer?.version.text ?? "the newest"} anyway with --allow-untested.`
    : `Debian's archive carries no CRIU >= ${min} (${carried}). ` +
        `Download CRIU ${TESTED_CRIU_TEXT}'s source tarball (criu.org lists the releases) and run: warmstart setup --criu-source <file>.`;
}
