import { isIP } from "node:net";
import { resolve } from "node:path";
import { invalidOption } from "../errors.js";

/** A file's inode and modification time: a flag file left over from an earlier run has the
 * same ones until the app creates or touches it again. */
export interface FileIdentity {
  readonly ino: number;
  readonly mtimeMs: number;
}

/** One readiness condition; the app is ready when every probe of a launch has passed once. */
export type ProbeSpec =
  | { kind: "tcp"; host: string; port: number }
  | { kind: "http"; url: string }
  /** `source` is the regex as the user typed it, for messages (RegExp#source escapes `/`). */
  | { kind: "log"; pattern: RegExp; source: string }
  /** `existedAs`: the file as it was before the app started, which does not count. */
  | { kind: "file"; path: string; existedAs?: FileIdentity }
  | { kind: "notify" };

/** The name messages give a probe's source: the flag, or a config file's field. */
const DEFAULT_OPTION = "--ready";
const ANY_FORM =
  "a readiness probe: tcp:<port>, tcp:<host>:<port>, http://<url>, https://<url>, log:<regex>, file:<path> or notify";
const TCP_FORM =
  "tcp:<port> or tcp:<host>:<port>, with a port from 1 to 65535 and an IPv6 host in brackets (tcp:[::1]:3000)";

/**
 * An omitted host means "this machine", whichever family the app listens on: "localhost"
 * may resolve to both ::1 and 127.0.0.1, and the connect tries each (Happy Eyeballs).
 */
const DEFAULT_TCP_HOST = "localhost";

/**
 * Parses one `--ready` value; a relative `file:` path is resolved against `cwd` (the app's).
 * `option` names where the value came from in messages (a config file's field, say).
 */
export function parseProbe(text: string, cwd: string, option = DEFAULT_OPTION): ProbeSpec {
  if (text === "notify") return { kind: "notify" };
  if (/^https?:\/\//i.test(text)) return parseHttp(text, option);
  const colon = text.indexOf(":");
  const scheme = colon === -1 ? "" : text.slice(0, colon);
  const rest = text.slice(colon + 1);
  switch (scheme) {
    case "tcp":
      return parseTcp(rest, text, option);
    case "log":
      return parseLog(rest, text, option);
    case "file":
      if (rest === "") throw invalidOption(option, "file:<path> with a non-empty path", text);
      return { kind: "file", path: resolve(cwd, rest) };
    default:
      throw invalidOption(option, ANY_FORM, text);
  }
}

/** A short form for messages, in the CLI syntax: `tcp:127.0.0.1:3000`, `log:listening`. */
export function describeProbe(spec: ProbeSpec): string {
  switch (spec.kind) {
    case "tcp":
      return `tcp:${spec.host.includes(":") ? `[${spec.host}]` : spec.host}:${spec.port}`;
    case "http":
      return spec.url;
    case "log":
      return `log:${spec.source}`;
    case "file":
      return `file:${spec.path}`;
    case "notify":
      return "notify";
  }
}

/** A host name: labels of letters, digits, hyphens (and underscores, which /etc/hosts allows). */
const HOST_NAME = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?$/i;

function parseTcp(rest: string, text: string, option: string): ProbeSpec {
  // tcp://host:port reads like a URL, but the probe is not one: without this, "//localhost"
  // would be taken for a host name that never resolves, and the launch would wait it out.
  if (rest.startsWith("//")) {
    throw invalidOption(option, `tcp:<host>:<port> without "//", as in tcp:${rest.slice(2)}`, text);
  }
  const split = /^(?:(?<host>\[[^\]]+\]|[^:[\]]+):)?(?<port>\d+)$/.exec(rest);
  const port = Number(split?.groups?.port);
  if (!split || !Number.isInteger(port) || port < 1 || port > 65535)
    throw invalidOption(option, TCP_FORM, text);
  const bracketed = split.groups?.host;
  const host = bracketed?.replace(/^\[(.*)\]$/, "$1") ?? DEFAULT_TCP_HOST;
  const isBracketed = bracketed !== undefined && bracketed !== host;
  if (isBracketed ? isIP(host) !== 6 : isIP(host) === 0 && !HOST_NAME.test(host)) {
    throw invalidOption(option, `${TCP_FORM}; ${JSON.stringify(host)} is not a host name or address`, text);
  }
  return { kind: "tcp", host, port };
}

function parseHttp(text: string, option: string): ProbeSpec {
  let url: URL;
  try {
    url = new URL(text);
  } catch (error) {
    throw invalidOption(
      option,
      `an http(s) URL such as http://127.0.0.1:3000/health (${messageOf(error)})`,
      text,
    );
  }
  if (url.hostname === "") throw invalidOption(option, "an http(s) URL with a host", text);
  return { kind: "http", url: url.href };
}

function parseLog(source: string, text: string, option: string): ProbeSpec {
  if (source === "") throw invalidOption(option, "log:<regex> with a non-empty regular expression", text);
  try {
    return { kind: "log", pattern: new RegExp(source), source };
  } catch (error) {
    throw invalidOption(
      option,
      `log:<regex> with a valid JavaScript regular expression (${messageOf(error)})`,
      text,
    );
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
