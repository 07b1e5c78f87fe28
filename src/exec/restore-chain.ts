import { distPath } from "../dist-paths.js";
import { isExecutableFile } from "./executable-file.js";

/** Built from src/exec/native/restore-chain.c by scripts/build-native.sh, when a C compiler is there. */
export const RESTORE_CHAIN_PROGRAM = "native/restore-chain";

/**
 * The restore chain's program, or undefined when it was not built: restores then run
 * through setpriv, sh, unshare, mount and a perl reaper (command-lines.ts), which do the same
 * in more execs. Looked for at each restore (a stat and an access(2)), so that a build made while serve
 * runs is used from its next restore. It is part of the build like the bundle beside it, and
 * trusted as that is.
 */
export function findRestoreChain(): string | undefined {
  const path = distPath(RESTORE_CHAIN_PROGRAM);
  return isExecutableFile(path) ? path : undefined;
}
