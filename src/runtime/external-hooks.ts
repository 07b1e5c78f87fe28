import { spawn } from "node:child_process";
import { invalidOption } from "../errors.js";
import type { CommandLine } from "../exec/command-lines.js";
import type { OutputSinks } from "../launch/app-process.js";

/**
 * Hooks for apps that import nothing (any language): a command warmstart runs, or an HTTP
 * request it makes to the app, the way Lambda's web adapter turns SnapStart's hooks into
 * HTTP calls.
 */
export type HookSpec =
  | { readonly kind: "command"; readonly command: string }
  | { readonly kind: "http"; readonly url: URL };

export type HookEvent = "before-checkpoint" | "after-restore";

export interface HookContext {
  readonly event: HookEvent;
  /** The app's PID on the host. */
  readonly pid: number;
  readonly key: string;
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
  /** Where a command hook's output goes (the app's sinks). */
  readonly sinks: OutputSinks;
  /** For an app in a network namespace of its own (a prewarm): runs a command inside it. */
  readonly inAppNetwork: ((command: CommandLine) => CommandLine) | undefined;
}

export type HookOutcome = { readonly ok: true } | { readonly ok: false; readonly detail: string };

export function parseHookSpec(text: string, option: string): HookSpec {
  if (text.trim() === "") throw invalidOption(option, "a command or an http:// URL", text);
  if (/^https?:\/\//i.test(text)) {
    try {
      return { kind: "http", url: new URL(text) };
    } catch {
      throw invalidOption(option, "a valid http:// or https:// URL", text);
    }
  }
  return { kind: "command", command: text };
}

export function describeHook(spec: HookSpec): string {
  return spec.kind === "http" ? `POST ${spec.url.href}` : JSON.stringify(spec.command);
}

export function runExternalHook(spec: HookSpec, context: HookContext): Promise<HookOutcome> {
  const inNetwork = context.inAppNetwork ?? ((command: CommandLine) => command);
  if (spec.kind === "command") return runHookProcess(inNetwork(["sh", "-c", spec.command]), context);
  // In another network namespace, the request must be made from inside it: 127.0.0.1 here
  // would be the serving instance's.
  if (context.inAppNetwork)
    return runHookProcess(inNetwork([process.execPath, "-e", POST_SCRIPT, spec.url.href]), context);
  return postHook(spec.url, context);
}

/** postHook, as a process of its own: exit 0 on a 2xx answer. */
const POST_SCRIPT = `const url = new URL(process.argv[1]);
const req = require(url.protocol === "https:" ? "node:https" : "node:http").request(url, {
  method: "POST",
  headers: { "content-length": "0", "x-warmstart-event": process.env.WARMSTART_EVENT,
    "x-warmstart-key": process.env.WARMSTART_KEY, "x-warmstart-pid": process.env.WARMSTART_PID },
}, (res) => {
  res.resume();
  if (res.statusCode < 200 || res.statusCode > 299) { console.error("answered " + res.statusCode); process.exitCode = 1; }
});
req.on("error", (error) => { console.error(error.message); process.exitCode = 1; });
req.end();`;

/** A process with WARMSTART_PID, WARMSTART_KEY and WARMSTART_EVENT; exit 0 is success. */
function runHookProcess(argv: readonly string[], context: HookContext): Promise<HookOutcome> {
  const [file = "sh", ...args] = argv;
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      cwd: context.cwd,
      env: {
        ...context.env,
        WARMSTART_PID: String(context.pid),
        WARMSTART_KEY: context.key,
        WARMSTART_EVENT: context.event,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.on("data", (chunk: Buffer) => context.sinks.stdout.write(chunk));
    child.stderr.on("data", (chunk: Buffer) => context.sinks.stderr.write(chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), context.timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve({ ok: false, detail: `could not run ${file}: ${error.message}` });
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ ok: true });
      else if (signal === "SIGKILL")
        resolve({ ok: false, detail: `timed out after ${context.timeoutMs} ms and was killed` });
      else resolve({ ok: false, detail: `exited with ${code ?? signal}` });
    });
  });
}

/** POST with the event in headers; any 2xx is success. node:https (and tls) are loaded only
 * for an https hook: never on the warm path of an app without one. */
async function postHook(url: URL, context: HookContext): Promise<HookOutcome> {
  const { request } = url.protocol === "https:" ? await import("node:https") : await import("node:http");
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        method: "POST",
        agent: false,
        headers: {
          "content-length": "0",
          connection: "close",
          "x-warmstart-event": context.event,
          "x-warmstart-key": context.key,
          "x-warmstart-pid": String(context.pid),
        },
        timeout: context.timeoutMs,
      },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        resolve(status >= 200 && status < 300 ? { ok: true } : { ok: false, detail: `answered ${status}` });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${context.timeoutMs} ms`)));
    req.on("error", (error) => resolve({ ok: false, detail: error.message }));
    req.end();
  });
}
