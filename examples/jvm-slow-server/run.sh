#!/usr/bin/env bash
# Runs SlowServer in this shell's process (exec), so the PID you started is the JVM's.
# Builds it first if build/SlowServer.class is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ ! -f "$here/build/SlowServer.class" ]]; then
  "$here/build.sh" >&2
fi

# -XX:+UseSerialGC   one GC thread: fewer threads for CRIU to dump and restore.
# -XX:-UsePerfData   no mmap'd hsperfdata file in /tmp, which would otherwise break restores.
# -Xms/-Xmx/-Xmn     a fixed heap layout whose young generation holds the whole startup state,
#                    so no collection runs during startup or just after it on any machine
#                    (the default sizes follow the machine's RAM).
exec java -XX:+UseSerialGC -XX:-UsePerfData -Xshare:auto -Xms384m -Xmx1g -Xmn256m \
  -cp "$here/build" SlowServer
