#!/usr/bin/env bash
# Debian's PostgreSQL server, for the integration tests of apps that hold database connections
# across a checkpoint (test/integration/postgres.test.ts starts a private cluster of its own with
# scripts/pg-test-cluster.sh). Idempotent, and quick when it is there. Debian's package also
# creates and starts its default cluster (localhost:5432); the tests never use it.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "install-postgres: error: installing postgresql needs root" >&2; exit 1; }
echo "setup: installing postgresql for the database tests"
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgresql >/dev/null ||
  { echo "install-postgres: error: could not install postgresql (run apt-get update?)" >&2; exit 1; }
