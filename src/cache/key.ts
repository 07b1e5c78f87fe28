import { createHash } from "node:crypto";

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
  /** sha256 over the sorted NAME=VALUE pairs that are kept: values never appear in clear. */
  readonly envSha256: string;
  /** The names that are kept, so a miss can say which one appeared or vanished. */
  readonly envNames: readonly string[];
  /** Credentials are restored as dumped; another user's launch must not become this one. */
  readonly uid: number;
  readonly gid: number;
  /** CRIU images depend on kernel ABI details (vDSO layout, struct sizes). */
  readonly kernelRelease: string;
  /** The image format belongs to the CRIU that wrote it. */
  readonly criuVersion: string;
}

export function hashEnvironment(
  env: NodeJS.ProcessEnv,
  ignore: ReadonlySet<string> = new Set(),
): {
  envSha256: string;
  envNames: string[];
} {
  const names = Object.keys(env)
    .filter((name) => env[name] !== undefined && !isVolatileEnv(name, ignore))
    .sort();
  const hash = createHash("sha256");
  for (const name of names) hash.update(`${name}=${env[name]}\0`);
  return { envSha256: hash.digest("hex"), envNames: names };
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

/** The field names whose values differ, for "-v: missed because ..." messages. */
export function diffKeyFields(a: CacheKeyFields, b: CacheKeyFields): (keyof CacheKeyFields)[] {
  return (Object.keys(a) as (keyof CacheKeyFields)[]).filter(
    (field) => canonicalJson(a[field]) !== canonicalJson(b[field]),
  );
}
