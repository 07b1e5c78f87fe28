import { createHash, createHmac } from "node:crypto";

/** Bumped when the layout of an entry or the meaning of a key field changes. 2: the key in
 * parts (a base key, entries under it with their host and discovered inputs). Entries of
 * other versions are never used; `prune` removes them. */
export const IMAGE_FORMAT_VERSION = 2;

/**
 * Environment variables that differ between two launches of the same service without
 * changing what it computes at startup. They are left out of the key; the restored app
 * keeps the values it had when it was checkpointed.
 */
export const VOLATILE_ENV = new Set([
  "_", // the shell's last command
  "OLDPWD",
  "PWD", // cwd is its own key field
  "SHLVL",
  "COLUMNS",
  "LINES",
  "TERM_SESSION_ID",
  "WINDOWID",
  "SSH_CLIENT",
  "SSH_CONNECTION",
  "SSH_TTY",
  "SSH_AUTH_SOCK",
  "TMUX",
  "TMUX_PANE",
  "XDG_SESSION_ID",
  "INVOCATION_ID", // systemd, per start
  "JOURNAL_STREAM",
  "NOTIFY_SOCKET", // warmstart sets it per launch
  "LS_COLORS",
  "PS1",
  "PROMPT_COMMAND",
  "HISTFILE",
]);

export function isVolatileEnv(name: string, extra: ReadonlySet<string> = new Set()): boolean {
  return VOLATILE_ENV.has(name) || name.startsWith("WARMSTART_") || extra.has(name);
}

/**
 * What a snapshot was made on, that the host restoring it must offer. Kept beside each entry
 * rather than in the base key: a snapshot is found by what the app is, and restored only
 * where the host part matches (equality today; issue 14 turns this into a compatibility
 * check that lets snapshots travel between hosts).
 *
 * Not here, on purpose: the hostname. A restored app asks the kernel for it again, so only
 * what an app cached at startup (a log prefix, a cluster node name) keeps the old one; a
 * field that differs on every host would make every snapshot unusable anywhere else, for
 * the few apps that do. Such an app can say so with an environment variable it reads
 * (`NODE_NAME=$(hostname)`): variables are part of the key.
 */
export interface HostKeyFields {
  /** CRIU images depend on kernel ABI details (vDSO layout, struct sizes). */
  readonly kernelRelease: string;
  /** The restored code may use any CPU feature it detected at startup (AVX-512, ...). */
  readonly cpuFlagsSha256: string;
  /** The image format belongs to the CRIU that wrote it. */
  readonly criuVersion: string;
  /** CPUs the app may run on (its affinity, e.g. under `taskset`): Node, the JVM and most
   * runtimes size thread pools from it at startup and never look again. */
  readonly cpusAllowed: number;
  /** The cgroup's CPU quota in CPUs (cpu.max, or cfs_quota_us / cfs_period_us), null when
   * unlimited: the JVM's active processor count is the smaller of this and the affinity. */
  readonly cpuQuota: number | null;
  /** The smallest memory limit of the cgroup and its parents, null when unlimited: heaps
   * are sized from it at startup. A JVM snapshotted with 24 GiB visible and restored into a
   * 512 MiB cgroup is an out-of-memory kill waiting to happen. */
  readonly memoryLimitBytes: number | null;
}

/**
 * Everything known before a lookup that makes a snapshot valid for a launch. A wrong hit
 * (old code, old config served silently) is the worst bug warmstart can have, a wrong miss
 * only costs one cold start. The base key hashes every field but `host`; each entry under
 * it then carries its host part and the inputs the app was seen reading while it started
 * (see src/inputs/), both checked at lookup.
 */
export interface CacheKeyFields {
  /** The image layout; a new warmstart must not misread an old entry. */
  readonly formatVersion: number;
  /** sha256 of the executable's bytes, not its path or mtime: a rebuilt binary misses. */
  readonly executableSha256: string;
  /** The resolved executable path: the image maps it by path on restore. */
  readonly executablePath: string;
  /** argv after the executable: flags change what the app builds at startup. */
  readonly args: readonly string[];
  /** Relative paths the app opens resolve against it. */
  readonly cwd: string;
  /** The declared inputs (--input globs) as given, so a new pattern misses too. */
  readonly inputPatterns: readonly string[];
  /** path -> sha256 of each file the declared inputs match: what the app reads after it is
   * ready, which no recording of its startup can see. */
  readonly inputs: Readonly<Record<string, string>>;
  /** --input-ignore globs: they decide which discovered files count, so a new one misses. */
  readonly inputIgnore: readonly string[];
  /** NAME -> keyed digest (HMAC with this cache's secret) of each variable that is kept:
   * a changed value misses and can be named, but values never appear in clear, and the
   * digests cannot be checked against guesses without the secret. */
  readonly env: Readonly<Record<string, string>>;
  /** Credentials are restored as dumped; another user's launch must not become this one. */
  readonly uid: number;
  readonly gid: number;
  /** What the host must offer; not part of the base key (see HostKeyFields). */
  readonly host: HostKeyFields;
}

export function digestEnvironment(
  env: NodeJS.ProcessEnv,
  secret: Buffer,
  ignore: ReadonlySet<string> = new Set(),
): Record<string, string> {
  const digests: Record<string, string> = {};
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (value === undefined || isVolatileEnv(name, ignore)) continue;
    digests[name] = createHmac("sha256", secret).update(value).digest("hex").slice(0, 32);
  }
  return digests;
}

/** The base key: sha256 of the fields but `host`, as canonical JSON (keys sorted). */
export function computeBaseKey(fields: CacheKeyFields): string {
  const { host: _host, ...app } = fields;
  return createHash("sha256").update(canonicalJson(app)).digest("hex");
}

/**
 * An entry's key: 32 hex digits of its own digest (host part and discovered inputs), then
 * the first 32 of its base key. Entries stay one flat directory each, named by this key,
 * and a lookup lists the store once and keeps the names that end in its base key.
 */
export function computeEntryKey(baseKey: string, host: HostKeyFields, discovered: readonly string[]): string {
  const own = createHash("sha256")
    .update(canonicalJson({ baseKey, host, discovered: [...discovered].sort() }))
    .digest("hex");
  return `${own.slice(0, 32)}${baseKey.slice(0, 32)}`;
}

/** The part of an entry key a lookup matches on. */
export function baseKeySuffix(baseKey: string): string {
  return baseKey.slice(0, 32);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * What differs between two keys, in words: field names, and for the maps the entry that
 * changed ("env FOO changed", "input src/app.js changed"); host fields with both values
 * ("cpusAllowed changed (2 -> 1)"), which are not secret and say what to fix.
 */
export function diffKeyFields(from: CacheKeyFields, to: CacheKeyFields): string[] {
  const changes: string[] = [];
  for (const field of Object.keys(to) as (keyof CacheKeyFields)[]) {
    if (field === "env" || field === "inputs") {
      const label = field === "env" ? "env" : "input";
      const before: Readonly<Record<string, string>> = from[field] ?? {};
      const after = to[field];
      for (const name of new Set([...Object.keys(before), ...Object.keys(after)])) {
        if (!(name in before)) changes.push(`${label} ${name} appeared`);
        else if (!(name in after)) changes.push(`${label} ${name} is gone`);
        else if (before[name] !== after[name]) changes.push(`${label} ${name} changed`);
      }
    } else if (field === "host") {
      changes.push(...diffHostFields(from.host, to.host));
    } else if (canonicalJson(from[field]) !== canonicalJson(to[field])) {
      changes.push(`${field} changed`);
    }
  }
  return changes;
}

export function diffHostFields(from: HostKeyFields | undefined, to: HostKeyFields): string[] {
  const changes: string[] = [];
  for (const field of Object.keys(to) as (keyof HostKeyFields)[]) {
    const before = from?.[field];
    const after = to[field];
    if (canonicalJson(before) === canonicalJson(after)) continue;
    // Digests say nothing to a reader; counts and versions do.
    const isDigest = field === "cpuFlagsSha256";
    changes.push(
      isDigest
        ? `${field} changed`
        : `${field} changed (${formatHostValue(before)} -> ${formatHostValue(after)})`,
    );
  }
  return changes;
}

function formatHostValue(value: unknown): string {
  if (value === null) return "unlimited";
  if (value === undefined) return "unknown";
  return String(value);
}
