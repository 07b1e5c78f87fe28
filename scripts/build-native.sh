#!/usr/bin/env bash
# Builds warmstart's native parts: the input check (src/inputs/native/input-stamps.c) into
# dist/native/input-stamps.so, which a warm launch loads through koffi to stat a snapshot's
# discovered inputs in one call; the restore chain (src/exec/native/restore-chain.c) into
# dist/native/restore-chain, the one program between warmstart and CRIU on a restore. Needs a
# C compiler (cc; scripts/setup.sh installs one, CRIU's build needs it too); without one it
# says so and builds nothing, and warmstart then stats each input from JavaScript and restores
# through util-linux and perl. Run by `npm run build`; nothing built here is ever committed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/dist/native/input-stamps.so"
chain="$root/dist/native/restore-chain"
compiler=${CC:-cc}
if ! command -v "$compiler" >/dev/null 2>&1; then
  echo "build-native: no C compiler ($compiler): warm launches stat their inputs from JavaScript and restore through util-linux and perl" >&2
  rm -f "$out" "$chain"
  exit 0
fi
mkdir -p "$(dirname "$out")"
# Built beside, then renamed: a launch running meanwhile loads the old library or the new one.
"$compiler" -O2 -Wall -Wextra -Werror -shared -fPIC -o "$out.tmp" "$root/src/inputs/native/input-stamps.c"
chmod 0755 "$out.tmp"
mv -f "$out.tmp" "$out"
"$compiler" -O2 -Wall -Wextra -Werror -o "$chain.tmp" "$root/src/exec/native/restore-chain.c"
chmod 0755 "$chain.tmp"
mv -f "$chain.tmp" "$chain"
