#!/usr/bin/env bash
# Compiles src/SlowServer.java into build/ with the machine's javac.
# Does nothing when build/SlowServer.class is newer than the source.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_file="$here/src/SlowServer.java"
out_dir="$here/build"
class_file="$out_dir/SlowServer.class"

if [[ -f "$class_file" && "$class_file" -nt "$source_file" ]]; then
  exit 0
fi

if ! command -v javac >/dev/null 2>&1; then
  echo "jvm-slow-server: javac not found on PATH. Install a JDK 17 or newer" \
    "(on Debian 12: apt-get install openjdk-17-jdk-headless)." >&2
  exit 1
fi

# Compile into a private directory, then move the classes into place with SlowServer.class
# last, so that a concurrent run.sh never sees a half-written build.
mkdir -p "$out_dir"
tmp_dir="$(mktemp -d "$out_dir/.tmp.XXXXXX")"
trap 'rm -rf "$tmp_dir"' EXIT
javac --release 17 -Xlint:all -d "$tmp_dir" "$source_file"
for class in "$tmp_dir"/*.class; do
  [[ "$class" == "$tmp_dir/SlowServer.class" ]] || mv -f "$class" "$out_dir/"
done
mv -f "$tmp_dir/SlowServer.class" "$class_file"
