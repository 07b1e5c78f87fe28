import { createHash, createHmac } from "node:crypto";

/** Bumped when the layout of an entry or the meaning of a key field changes. */
export const IMAGE_FORMAT_VERSION = 1;

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
 * Everything that makes a snapshot valid for a launch. Two launches share an image only
 * when every field is equal; a wrong hit (old code, old config served silently) is the
 * worst bug warmstart can have, a wrong miss only costs one cold start.
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
  /** path -> sha256 of each file the inputs match: the app's code, jar, config. For
   * `node app.js` or `java -jar app.jar` the executable is the runtime; these are the app. */
  readonly inputs: Readonly<Record<string, string>>;
  /** NAME -> keyed digest (HMAC with this cache's secret) of each variable that is kept:
   * a changed value misses and can be named, but values never appear in clear, and the
   * digests cannot be checked against guesses without the secret. */
  readonly env: Readonly<Record<string, string>>;
  /** Credentials are restored as dumped; another user's launch must not become this one. */
  readonly uid: number;
  readonly gid: number;
  /** CRIU images depend on kernel ABI details (vDSO layout, struct sizes). */
  readonly kernelRelease: string;
  /** The restored code may use any CPU feature it detected at startup (AVX-512, ...). */
  readonly cpuFlagsSha256: string;
  /** The image format belongs to the CRIU that wrote it. */
  readonly criuVersion: string;
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

/** The key: sha256 of the fields as canonical JSON (keys sorted). */
export function computeCacheKey(fields: CacheKeyFields): string {
  return createHash("sha256").update(canonicalJson(fields)).digest("hex");
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
 * changed ("env FOO changed", "input src/app.js changed").
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
    } else if (canonicalJson(from[field]) !== canonicalJson(to[field])) {
      changes.push(`${field} changed`);
    }
  }
  return changes;
}
