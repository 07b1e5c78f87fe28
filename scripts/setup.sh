#!/usr/bin/env bash
# What the tests and the demo need beyond npm packages, on Debian 12 or 13 as root: CRIU
# (`warmstart setup`, run from this checkout's build), a JDK for the JVM example and the
# Java agent, a C compiler for the native input check, what snapshots that travel use (zstd;
# a registry and iproute2 for their tests), and PostgreSQL for the database tests
# (scripts/install-postgres.sh).
# Idempotent, and quick when everything is there. Run by `npm test` and `npm run demo`
# before they start.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cli="$root/dist/bundle/cli.cjs"
# `npm ci` builds the CLI (its prepare script); a checkout without a build gets one here.
[ -f "$cli" ] || (cd "$root" && npm run build)
node "$cli" setup
if ! command -v javac >/dev/null 2>&1; then
  echo "setup: installing a JDK for examples/jvm-slow-server"
  [ "$(id -u)" -eq 0 ] || { echo "setup: error: javac is missing and installing it needs root" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends default-jdk-headless >/dev/null ||
    { echo "setup: error: could not install default-jdk-headless (run apt-get update?)" >&2; exit 1; }
fi
if ! command -v cc >/dev/null 2>&1; then
  # A CRIU that was there already did not need one built: the native input check does.
  echo "setup: installing a C compiler for the native input check"
  [ "$(id -u)" -eq 0 ] || { echo "setup: error: cc is missing and installing it needs root" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null ||
    { echo "setup: error: could not install gcc (run apt-get update?)" >&2; exit 1; }
fi
# A build made before there was a compiler lacks the native input check.
[ -f "$root/dist/native/input-stamps.so" ] || bash "$root/scripts/build-native.sh"
bash "$root/scripts/install-fleet-deps.sh"
bash "$root/scripts/install-postgres.sh"
