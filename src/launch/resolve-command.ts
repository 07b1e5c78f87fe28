import { accessSync, constants, realpathSync, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { WarmstartError } from "../errors.js";

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
    // Most PATH entries do not hold the command: a stat that returns nothing for them costs
    // no exception (a thrown ENOENT per entry was ~0.3 ms of every warm launch's key).
    try {
      if (!statSync(candidate, { throwIfNoEntry: false })?.isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return { command, executable: realpathSync(candidate), args };
    } catch {
      // Not executable by us, a PATH entry that is no directory, or gone meanwhile.
    }
  }
  throw new WarmstartError("spawn-failed", `Command not found or not executable: ${JSON.stringify(name)}.`, {
    hint: name.includes("/")
      ? "check the path and its execute permission"
      : "check that it is installed and in PATH",
    details: { command: name },
  });
}
