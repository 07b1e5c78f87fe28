import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** A user name and password (or token) for a registry; never logged, never in an event. */
export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * WARMSTART_REMOTE_USERNAME and WARMSTART_REMOTE_PASSWORD, else the `auths` entry of docker's
 * config.json ($DOCKER_CONFIG or ~/.docker) for the registry. Credential helpers (credsStore)
 * are not run: they are programs, and a launch must not depend on one.
 */
export function findCredentials(
  registry: string,
  env: NodeJS.ProcessEnv = process.env,
): RegistryCredentials | undefined {
  if (env.WARMSTART_REMOTE_USERNAME && env.WARMSTART_REMOTE_PASSWORD) {
    return { username: env.WARMSTART_REMOTE_USERNAME, password: env.WARMSTART_REMOTE_PASSWORD };
  }
  const configDir = env.DOCKER_CONFIG ?? join(env.HOME ?? homedir(), ".docker");
  let config: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    config = JSON.parse(readFileSync(join(configDir, "config.json"), "utf8")) as typeof config;
  } catch {
    return undefined;
  }
  const entry =
    config.auths?.[registry] ?? config.auths?.[`https://${registry}`] ?? config.auths?.[`http://${registry}`];
  if (!entry) return undefined;
  if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  if (!entry.auth) return undefined;
  const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon > 0 ? { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) } : undefined;
}

/** The challenge of a 401: Basic, or Bearer with the token service's realm and scope. */
export function parseChallenge(
  header: string | null,
): { scheme: "basic" } | { scheme: "bearer"; params: Record<string, string> } | undefined {
  if (!header) return undefined;
  const [scheme, rest = ""] = header.split(/\s+(.*)/s);
  if (scheme?.toLowerCase() === "basic") return { scheme: "basic" };
  if (scheme?.toLowerCase() !== "bearer") return undefined;
  const params: Record<string, string> = {};
  for (const match of rest.matchAll(/(\w+)="([^"]*)"/g)) {
    if (match[1] && match[2] !== undefined) params[match[1]] = match[2];
  }
  return { scheme: "bearer", params };
}
