import type { CriuVersion } from "../criu/find-criu.js";
import { WarmstartError } from "../errors.js";
import { runTool } from "./run-tool.js";

/**
 * The release a CRIU source tarball holds, from its top-level Makefile.versions (what CRIU's
 * own build stamps into `criu --version`), so a tarball is judged before a minute of build.
 */
export async function readTarballVersion(tarball: string): Promise<CriuVersion> {
  // GNU tar recognises gzip, xz, bzip2 and zstd on its own when reading.
  const result = await runTool("tar", ["-xOf", tarball, "--wildcards", "--no-anchored", "Makefile.versions"]);
  const field = (name: string) =>
    new RegExp(`^CRIU_VERSION_${name}\\s*:=\\s*(\\d+)`, "m").exec(result.output)?.[1];
  const [major, minor, patch] = [field("MAJOR"), field("MINOR"), field("SUBLEVEL")];
  if (result.exitCode !== 0 || major === undefined || minor === undefined) {
    throw new WarmstartError(
      "setup-failed",
      `${tarball} does not look like CRIU's source: no Makefile.versions with CRIU_VERSION_MAJOR and _MINOR in it.`,
      { hint: "give the source tarball of a CRIU release (criu-4.2.1.tar.gz, criu_4.2.1.orig.tar.xz)" },
    );
  }
  const version = { major: Number(major), minor: Number(minor), patch: Number(patch ?? 0) };
  return { ...version, text: `${version.major}.${version.minor}.${version.patch}` };
}
