import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WarmstartError } from "../errors.js";
import { parseProbe } from "../readiness/probe-spec.js";

/** What `warmstart.config.json` (or package.json's "warmstart" field) may say. CLI flags win. */
export interface ConfigFile {
  /** Where it was read from, for messages. */
  readonly source: string;
  readonly ready?: readonly string[];
  /** Seconds. */
  readonly readyTimeout?: number;
  readonly inputs?: readonly string[];
  readonly inputIgnore?: readonly string[];
  readonly envIgnore?: readonly string[];
  /** "10G", "500M" or a number of bytes. */
  readonly maxCacheSize?: string | number;
  /** false: do not inject warmstart's runtime (--no-runtime). */
  readonly runtime?: boolean;
  /** Seconds each phase's hooks may take (--hook-timeout). */
  readonly hookTimeout?: number;
  /** A command or an http(s) URL (--before-checkpoint). */
  readonly beforeCheckpoint?: string;
  /** A command or an http(s) URL (--after-restore). */
  readonly afterRestore?: string;
  /** A failing restore hook makes the launch start cold (--strict-hooks). */
  readonly strictHooks?: boolean;
}

const FIELDS: Record<string, (value: unknown) => boolean> = {
  ready: isStringList,
  readyTimeout: isPositiveNumber,
  inputs: isStringList,
  inputIgnore: isStringList,
  envIgnore: isStringList,
  maxCacheSize: (value) => (typeof value === "number" && value > 0) || typeof value === "string",
  runtime: (value) => typeof value === "boolean",
  hookTimeout: isPositiveNumber,
  beforeCheckpoint: isNonEmptyString,
  afterRestore: isNonEmptyString,
  strictHooks: (value) => typeof value === "boolean",
};

const EXPECTED: Record<string, string> = {
  ready: "a list of probes (strings)",
  readyTimeout: "a positive number of seconds",
  inputs: "a list of glob patterns (strings)",
  inputIgnore: "a list of glob patterns (strings)",
  envIgnore: "a list of variable names (strings)",
  maxCacheSize: 'a size like "10G" or a number of bytes',
  runtime: "true or false",
  hookTimeout: "a positive number of seconds",
  beforeCheckpoint: "a command or an http:// URL (a string)",
  afterRestore: "a command or an http:// URL (a string)",
  strictHooks: "true or false",
};

function isPositiveNumber(value: unknown): boolean {
  return typeof value === "number" && Number.isFinite(value) && value > 0;
}

function isNonEmptyString(value: unknown): boolean {
  return typeof value === "string" && value.trim() !== "";
}

function isStringList(value: unknown): boolean {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

/** The config in `cwd`, or undefined when there is none. Throws on a malformed one. */
export function loadConfigFile(cwd: string): ConfigFile | undefined {
  const configPath = join(cwd, "warmstart.config.json");
  const own = readJson(configPath);
  if (own !== undefined) return validateConfig(own, configPath);
  const packagePath = join(cwd, "package.json");
  const pkg = readJson(packagePath);
  if (pkg && typeof pkg === "object" && "warmstart" in pkg) {
    return validateConfig((pkg as { warmstart: unknown }).warmstart, `${packagePath} ("warmstart" field)`);
  }
  return undefined;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new WarmstartError("invalid-config", `${path} is not valid JSON: ${(error as Error).message}.`);
  }
}

export function validateConfig(value: unknown, source: string): ConfigFile {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new WarmstartError(
      "invalid-config",
      `Expected ${source} to hold an object, got ${JSON.stringify(value)}.`,
    );
  }
  for (const [field, fieldValue] of Object.entries(value)) {
    const isValid = FIELDS[field];
    if (!isValid) {
      throw new WarmstartError("invalid-config", `Unknown field "${field}" in ${source}.`, {
        hint: `known fields: ${Object.keys(FIELDS).join(", ")}`,
      });
    }
    if (!isValid(fieldValue)) {
      throw new WarmstartError(
        "invalid-config",
        `Expected "${field}" in ${source} to be ${EXPECTED[field]}, got ${JSON.stringify(fieldValue)}.`,
      );
    }
  }
  const config = value as Omit<ConfigFile, "source">;
  // Probe syntax is checked here, where the field is known: a bad value is the file's
  // mistake, and a message naming --ready would send the user looking at the command line.
  for (const probe of config.ready ?? []) {
    try {
      parseProbe(probe, "/", `"ready" in ${source}`);
    } catch (error) {
      throw error instanceof WarmstartError
        ? new WarmstartError("invalid-config", error.shortMessage, { cause: error })
        : error;
    }
  }
  return { ...config, source };
}
