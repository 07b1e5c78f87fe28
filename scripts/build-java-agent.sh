#!/usr/bin/env bash
# Builds warmstart's Java agent (src/runtime/jvm) into dist/runtime/warmstart-agent.jar, which
# warmstart installs beside its Node runtime and gives JVMs through JAVA_TOOL_OPTIONS. Needs a
# JDK (javac, jar; scripts/setup.sh installs one); without one it says so and builds nothing,
# and warmstart then injects no agent. Run by `npm run build`; the jar is never committed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/dist/runtime/warmstart-agent.jar"
if ! command -v javac >/dev/null 2>&1 || ! command -v jar >/dev/null 2>&1; then
  echo "build-java-agent: no JDK (javac): the Java agent is not built; JVM apps get no reseed" >&2
  rm -f "$out"
  exit 0
fi
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
# --release 11: runs on any JVM from 11 on. sun.misc.Signal is jdk.unsupported's, hence -Xlint:-options.
# -XDstringConcat=inline: string concatenation through StringBuilder, not invokedynamic, whose
# first run at each call site links method handles: in a restored copy, milliseconds a line.
javac --release 11 -nowarn -XDignore.symbol.file -XDstringConcat=inline -d "$classes" "$root"/src/runtime/jvm/*.java 2>&1 |
  { grep -v -e "^Note:" -e "warning: .* internal proprietary API" -e "^\s*\^$" -e "sun.misc.Signal" -e "^[0-9]* warning" || true; }
printf 'Premain-Class: warmstart.agent.WarmstartAgent\n' >"$classes/MANIFEST.MF"
mkdir -p "$(dirname "$out")"
# A fixed timestamp: the same sources give the same jar, hence the same runtime directory.
jar --create --file "$out" --manifest "$classes/MANIFEST.MF" --date 2000-01-01T00:00:02Z -C "$classes" warmstart
