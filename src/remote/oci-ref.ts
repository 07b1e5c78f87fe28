import { invalidOption } from "../errors.js";

/** A repository in an OCI distribution registry, from `oci://<registry>/<repository>`. */
export interface RemoteRef {
  /** host[:port], as the registry's API is reached and docker's config.json names it. */
  readonly registry: string;
  readonly repository: string;
  /** Plain HTTP for loopback registries (as docker does), HTTPS for every other. */
  readonly baseUrl: string;
}

const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

export function parseRemoteRef(text: string, env: NodeJS.ProcessEnv = process.env): RemoteRef {
  const match = /^oci:\/\/([^/]+)\/(.+)$/.exec(text);
  const registry = match?.[1];
  const repository = match?.[2];
  if (!registry || !repository || !REPOSITORY.test(repository)) {
    throw invalidOption("--remote", "oci://<registry>/<repository> (a lower-case repository path)", text);
  }
  const host = registry.replace(/:\d+$/, "");
  const isLoopback = host === "localhost" || host.startsWith("127.") || host === "[::1]";
  const isInsecure = isLoopback || (env.WARMSTART_REMOTE_INSECURE ?? "").split(",").includes(registry);
  return { registry, repository, baseUrl: `${isInsecure ? "http" : "https"}://${registry}` };
}
