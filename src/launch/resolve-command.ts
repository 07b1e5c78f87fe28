import { realpathSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { WarmstartError } from "../errors.js";
import { isExecutableFile } from "../exec/executable-file.js";

export interface ResolvedCommand {
  /** What the user typed, for messages and `ls`. */
  readonly command: readonly string[];
  /** Absolute path, symlinks followed: what the kernel will map, and what we hash. */
  readonly executable: string;
  readonly args: readonly string[];
}

/** PATH lookup like execvp, then realpath, so `node` and `/usr/bin/node` share an entry. */
export function resolveCommand(
  command: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): ResolvedCommand {
  const [name, ...args] = command;
  if (!name) {
    throw new WarmstartError("invalid-option", "Expected a command after `--`, got nothing.", {
      hint: "usage: warmstart run [options] -- <command> [args...]",
    });
  }
  const candidates = name.includes("/")
    ? [isAbsolute(name) ? name : resolve(cwd, name)]
    : (env.PATH ?? "").split(delimiter).map((dir) => join(resolve(cwd, dir || "."), name));
  for (const candidate of candidates) {
    if (!isExecutableFile(candidate)) continue;
    try {
      return { command, executable: realpathSync(candidate), args };
    } catch {
      // Gone meanwhile; try the next PATH entry.
    }
  }
  throw new WarmstartError("spawn-failed", `Command not found or not executable: ${JSON.stringify(name)}.`, {
    hint: name.includes("/")
      ? "check the path and its execute permission"
      : "check that it is installed and in PATH",
    details: { command: name },
  });
}
