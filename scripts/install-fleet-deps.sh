#!/usr/bin/env bash
# What snapshots that travel need from Debian, for warmstart and its tests:
#   zstd             compresses export archives and pushed layers (a streaming child process:
#                    its memory stays out of warmstart's heap, and it uses every core);
#   docker-registry  CNCF Distribution 2.8, the real OCI registry the remote-cache tests run on
#                    a loopback port with a throwaway storage directory (never as a service);
#   iproute2         `ip netns` and veth pairs for the two-host test.
# Idempotent: installs only what is missing. Usage: sudo scripts/install-fleet-deps.sh
set -euo pipefail

say() { printf 'install-fleet-deps: %s\n' "$*"; }
die() { printf 'install-fleet-deps: error: %s\n' "$*" >&2; exit 1; }

missing=()
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
[ ${#missing[@]} -eq 0 ] && exit 0

[ "$(id -u)" -eq 0 ] || die "${missing[*]} missing and installing needs root (try: sudo $0)"
say "installing ${missing[*]}"
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"; }
if ! apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  apt_get update -qq >/dev/null || die "apt-get update failed"
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "could not install ${missing[*]}"
fi
# The package starts a registry on :5000 where systemd runs; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
