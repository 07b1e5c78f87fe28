#!/usr/bin/env bash
# What the tests and the demo need beyond npm packages, on Debian 12 or 13 as root:
# CRIU >= 4.2 (scripts/install-criu.sh) and a JDK for the JVM example. Idempotent, and
# quick when everything is there. Run by `npm test` and `npm run demo` before they start.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/install-criu.sh"
if ! command -v javac >/dev/null 2>&1; then
  echo "setup: installing a JDK for examples/jvm-slow-server"
  [ "$(id -u)" -eq 0 ] || { echo "setup: error: javac is missing and installing it needs root" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends default-jdk-headless >/dev/null ||
    { echo "setup: error: could not install default-jdk-headless (run apt-get update?)" >&2; exit 1; }
fi
bash "$here/install-fleet-deps.sh"
