import type { DiscoveredInputs } from "../inputs/discovered-inputs.js";
import type { RuntimeManifest } from "../runtime/runtime-manifest.js";
import type { CacheKeyFields } from "./key.js";

export interface ListenAddress {
  /** As the kernel shows it: "127.0.0.1", "0.0.0.0", "::1", "::". */
  readonly address: string;
  readonly port: number;
}

/** What a cache entry says about itself. Written once, when the entry is committed. */
export interface Manifest {
  readonly formatVersion: number;
  readonly key: string;
  /** The base key the entry lives under (its key ends with the first half of it). */
  readonly baseKey: string;
  readonly fields: CacheKeyFields;
  /** The inputs its cold start was seen reading: each lookup checks them on disk. */
  readonly discovered: DiscoveredInputs;
  /** The command as the user typed it, for `ls` and messages. */
  readonly command: readonly string[];
  /** The app's PID at dump time; it keeps it inside the PID namespace it is restored into. */
  readonly pid: number;
  /** The app's fd 0-2 at dump time ("pipe:[INODE]"), handed fresh pipes on restore. */
  readonly stdio: readonly string[];
  /** Every file under images/: size and sha256, checked before a restore. */
  readonly files: Readonly<Record<string, { readonly bytes: number; readonly sha256: string }>>;
  readonly imageBytes: number;
  readonly createdAt: string;
  readonly coldReadyMs: number;
  readonly checkpointMs: number;
  /** The NOTIFY_SOCKET the app was given, if any: a restore makes it reach the new launch. */
  readonly notifySocket?: string;
  /** The TCP sockets the app listened on at dump time: a restore needs them free. */
  readonly listen?: readonly ListenAddress[];
  /** The in-app runtime's control pipes and how many participants blocked on them; absent
   * when the app ran without the runtime (--no-runtime). */
  readonly runtime?: RuntimeManifest;
}

const KEY = /^[0-9a-f]{64}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const PIPE = /^pipe:\[\d+\]$/;
/** CRIU's image names: `core-42.img`, `pages-1.img`, `stats-dump`... never a path. */
const IMAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Why a parsed manifest cannot be trusted, or undefined when it can. Its values go into
 * CRIU's arguments (the PID, the pipes) and into file paths (the image names), so each is
 * checked for its form, not only its type.
 */
export function describeInvalidManifest(value: unknown, key: string): string | undefined {
  if (!value || typeof value !== "object" || Array.isArray(value)) return "it is not an object";
  const m = value as Record<string, unknown>;
  if (m.key !== key || !KEY.test(key)) return `it does not describe entry ${key}`;
  if (!isCount(m.pid) || m.pid === 0) return `its pid ${JSON.stringify(m.pid)} is not a process ID`;
  if (
    !Array.isArray(m.stdio) ||
    m.stdio.length !== 3 ||
    !m.stdio.every((s) => typeof s === "string" && PIPE.test(s))
  )
    return `its stdio ${JSON.stringify(m.stdio)} is not three pipe:[inode] names`;
  if (!m.files || typeof m.files !== "object" || Array.isArray(m.files)) return "it lists no image files";
  for (const [name, file] of Object.entries(m.files as Record<string, unknown>)) {
    if (!IMAGE_NAME.test(name)) return `it names an image file ${JSON.stringify(name)}`;
    const f = file as { bytes?: unknown; sha256?: unknown } | null;
    if (!f || !isCount(f.bytes) || typeof f.sha256 !== "string" || !SHA256.test(f.sha256))
      return `its entry for ${name} has no valid size and sha256`;
  }
  if (!isCount(m.imageBytes)) return "its imageBytes is not a size";
  if (!Array.isArray(m.command) || !m.command.every((arg) => typeof arg === "string"))
    return "its command is not a list of strings";
  if (!m.fields || typeof m.fields !== "object") return "it has no key fields";
  if (typeof m.baseKey !== "string" || !KEY.test(m.baseKey)) return "its base key is not a key";
  const discovered = m.discovered as Partial<DiscoveredInputs> | null | undefined;
  if (
    (discovered?.mode !== "fanotify" && discovered?.mode !== "proc") ||
    !Array.isArray(discovered.files) ||
    !discovered.files.every((line) => typeof line === "string")
  )
    return "its discovered inputs are not a list";
  if (typeof m.createdAt !== "string" || Number.isNaN(Date.parse(m.createdAt)))
    return "its createdAt is not a date";
  if (!isCount(m.coldReadyMs) || !isCount(m.checkpointMs)) return "its timings are not numbers";
  if (m.notifySocket !== undefined && (typeof m.notifySocket !== "string" || !m.notifySocket.startsWith("/")))
    return "its notifySocket is not an absolute path";
  if (m.listen !== undefined && (!Array.isArray(m.listen) || !m.listen.every(isListenAddress)))
    return "its listen sockets are not addresses and ports";
  if (m.runtime !== undefined && !isRuntimeManifest(m.runtime))
    return "its runtime is not two pipe:[inode] names and a count";
  return undefined;
}

function isRuntimeManifest(value: unknown): boolean {
  const runtime = value as Partial<RuntimeManifest> | null;
  return (
    typeof runtime?.control?.down === "string" &&
    PIPE.test(runtime.control.down) &&
    typeof runtime.control.up === "string" &&
    PIPE.test(runtime.control.up) &&
    isCount(runtime.participants) &&
    (runtime.canReseedEarly === undefined || typeof runtime.canReseedEarly === "boolean")
  );
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isListenAddress(value: unknown): boolean {
  const socket = value as Partial<ListenAddress> | null;
  return (
    typeof socket?.address === "string" &&
    /^[0-9a-f.:]+$/i.test(socket.address) &&
    isCount(socket.port) &&
    socket.port > 0 &&
    socket.port < 65536
  );
}
