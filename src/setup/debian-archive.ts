import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { WarmstartError } from "../errors.js";
import { type CriuRelease, parseShowsrc } from "./criu-release.js";
import { runTool } from "./run-tool.js";

/**
 * The suites whose criu source packages setup considers: unstable and testing move first,
 * stable and its backports keep a release longer, experimental has what is next (built only
 * with --allow-untested). Names, not codenames, so the list does not age.
 */
const SUITES = ["sid", "testing", "stable", "stable-backports", "experimental"] as const;

const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

/**
 * The Debian archive this machine's apt already uses (deb822 `.sources` or one-line `.list`
 * files), so that no host name lives in warmstart: CRIU comes from where the rest of the
 * system does, its index signed and its files checked by apt.
 */
export function findArchiveUri(sourcesTexts: readonly string[]): string | undefined {
  const uris: string[] = [];
  for (const text of sourcesTexts) {
    for (const match of text.matchAll(/^URIs:\s*(.+)$/gm)) uris.push(...(match[1] ?? "").trim().split(/\s+/));
    for (const match of text.matchAll(/^deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)\s/gm))
      uris.push(match[1] ?? "");
  }
  return uris.find((uri) => /^https?:\/\/\S*\/debian\/?$/.test(uri));
}

export function readAptSources(): string[] {
  const texts: string[] = [];
  const read = (path: string) => {
    try {
      texts.push(readFileSync(path, "utf8"));
    } catch {
      // A missing sources.list is normal on deb822-only systems.
    }
  };
  read("/etc/apt/sources.list");
  let names: string[] = [];
  try {
    names = readdirSync("/etc/apt/sources.list.d");
  } catch {
    names = [];
  }
  for (const name of names.sort()) {
    if (name.endsWith(".sources") || name.endsWith(".list")) read(join("/etc/apt/sources.list.d", name));
  }
  return texts;
}

/**
 * A private apt configuration in `dir` that sees only CRIU's suites' source indexes: the
 * machine's own sources and package lists are left untouched.
 */
export class PrivateSourceIndex {
  readonly #dir: string;
  readonly #options: string[];

  constructor(dir: string, archiveUri: string) {
    this.#dir = dir;
    mkdirSync(join(dir, "lists", "partial"), { recursive: true });
    writeFileSync(
      join(dir, "sources.list"),
      SUITES.map((suite) => `deb-src [signed-by=${KEYRING}] ${archiveUri} ${suite} main\n`).join(""),
    );
    this.#options = [
      ...["-o", `Dir::Etc::SourceList=${join(dir, "sources.list")}`, "-o", "Dir::Etc::SourceParts=-"],
      ...["-o", `Dir::State::Lists=${join(dir, "lists")}`, "-o", "APT::Get::List-Cleanup=0"],
      ...["-o", "APT::Sandbox::User=root"],
    ];
  }

  /** Downloads the suites' source indexes. A suite the archive lacks is skipped by apt. */
  async update(): Promise<void> {
    const result = await runTool("apt-get", [...this.#options, "update", "-qq"]);
    if (result.exitCode !== 0) {
      throw new WarmstartError("setup-failed", `Could not read Debian's source indexes: ${result.tail}`, {
        hint: "check the network and apt's configuration (apt-get update)",
      });
    }
  }

  async listCriuReleases(): Promise<CriuRelease[]> {
    const result = await runTool("apt-cache", [...this.#options, "showsrc", "criu"]);
    return result.exitCode === 0 ? parseShowsrc(result.output) : [];
  }

  /** Fetches the release's upstream tarball (.orig.tar.*) into `<dir>/source`; its path. */
  async downloadOrigTarball(release: CriuRelease): Promise<string> {
    const target = join(this.#dir, "source");
    mkdirSync(target, { recursive: true });
    // The Debian part (debian.tar.xz) may be missing from a mirror: the upstream tarball
    // alone builds, so a failure is judged by what arrived.
    const result = await runTool(
      "apt-get",
      [...this.#options, "source", "--download-only", `criu=${release.debianVersion}`],
      { cwd: target },
    );
    const orig = readdirSync(target).find((name) => /^criu_.*\.orig\.tar\.[a-z0-9]+$/.test(name));
    if (!orig) {
      throw new WarmstartError(
        "setup-failed",
        `apt-get source did not deliver criu ${release.debianVersion}'s upstream tarball: ${result.tail}`,
      );
    }
    return join(target, orig);
  }
}
