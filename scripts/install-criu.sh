#!/usr/bin/env bash
# Makes a working CRIU >= 4.2 available as `criu` (and `criu-ns`) on Debian 12 or 13.
#
# Why build from source: Debian 12's criu 3.17 fails every command on kernels with a
# [vvar_vclock] mapping ("Unexpected rt vDSO area bounds"), and Debian 13's 4.1.1 cannot
# dump a process holding an inet socket on kernels >= 6.16 (SO_PASSCRED refused). 4.2 fixed
# both. We take CRIU's source package from Debian's own archive through apt (its signatures
# and checksums verified by apt), using the archive URI this machine is already configured
# with, so no host name lives in this repository.
#
# Idempotent: when the `criu` found passes the probe below, it does nothing.
# Usage: sudo scripts/install-criu.sh [--force]
set -euo pipefail

readonly MIN_MAJOR=4 MIN_MINOR=2
readonly PREFIX=/usr/local/sbin
readonly BUILD_DEPS=(build-essential pkgconf libbsd-dev libcap-dev libgnutls28-dev libnet1-dev
  libnftables-dev libnl-3-dev libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler
  protobuf-compiler uuid-dev python3-protobuf xz-utils iproute2 util-linux)

say() { printf 'install-criu: %s\n' "$*"; }
die() { printf 'install-criu: error: %s\n' "$*" >&2; exit 1; }

force=0
case "${1:-}" in
  --force) force=1 ;;
  -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "unknown argument '$1' (expected --force or nothing)" ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (try: sudo $0)"

# Prefer our own install location: a distro criu elsewhere in PATH may be the broken one.
export PATH="$PREFIX:$PATH"

# Prints the version of the criu at $1 as "MAJOR MINOR", or nothing.
criu_version() {
  "$1" --version 2>/dev/null | sed -n 's/^Version: *\([0-9]*\)\.\([0-9]*\).*/\1 \2/p'
}

# The probe: version >= 4.2, `criu check` passes, criu-ns is there, and a real dump of a
# process that holds a listening inet socket succeeds (the exact thing 4.1.1 fails at here).
probe() {
  local criu ver major minor dir pid ok=0
  criu=$(command -v criu) || { say "no criu in PATH"; return 1; }
  ver=$(criu_version "$criu")
  [ -n "$ver" ] || { say "$criu does not report a version"; return 1; }
  read -r major minor <<<"$ver"
  if [ "$major" -lt "$MIN_MAJOR" ] || { [ "$major" -eq "$MIN_MAJOR" ] && [ "$minor" -lt "$MIN_MINOR" ]; }; then
    say "$criu is version $major.$minor, need >= $MIN_MAJOR.$MIN_MINOR"
    return 1
  fi
  command -v criu-ns >/dev/null || { say "criu-ns is missing"; return 1; }
  criu check >/dev/null 2>&1 || { say "'$criu check' fails"; return 1; }
  dir=$(mktemp -d)
  # A process that holds a listening loopback socket; setsid so it is its own session leader.
  setsid node -e 'require("net").createServer().listen(0, "127.0.0.1")' </dev/null >/dev/null 2>&1 &
  pid=$!
  sleep 0.3
  if criu dump -t "$pid" -D "$dir" --leave-running -o dump.log >/dev/null 2>&1; then ok=1; fi
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$ok" -ne 1 ]; then
    say "'$criu dump' of a process with a TCP socket failed: $(grep -m1 -i error "$dir/dump.log" || true)"
    rm -rf "$dir"
    return 1
  fi
  rm -rf "$dir"
  say "criu $major.$minor at $criu works (check, criu-ns, dump of a TCP listener)"
}

if [ "$force" -eq 0 ] && probe; then
  say "nothing to do"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian 12 and 13 only"

# The Debian archive this machine already uses (deb822 .sources or one-line .list files).
archive_uri() {
  {
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *//p' | tr ' ' '\n'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -n 's/^deb\(-src\)\{0,1\} \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\3/p'
  } | grep -E '^https?://[^ ]*/debian/?$' | head -n1
}

uri=$(archive_uri) || true
[ -n "$uri" ] || die "could not find a Debian archive URI in /etc/apt/sources.list{,.d}: add Debian's main archive to apt's sources"
say "using the Debian archive configured on this machine: $uri"

work=$(mktemp -d /tmp/install-criu.XXXXXX)
trap 'rm -rf "$work"' EXIT

say "installing build dependencies"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed"
apt-get install -y -qq --no-install-recommends "${BUILD_DEPS[@]}" >/dev/null ||
  die "could not install build dependencies: ${BUILD_DEPS[*]}"

# A private apt setup that sees only the unstable suite's sources, so the machine's own
# sources and package lists are left untouched.
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
mkdir -p "$work/lists/partial" "$work/src"
echo "deb-src [signed-by=$keyring] $uri sid main" >"$work/sources.list"
apt_private=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=-"
  -o "Dir::State::Lists=$work/lists" -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")

say "fetching criu's source package from the unstable suite"
apt-get "${apt_private[@]}" update -qq || die "could not read the unstable suite's source index from $uri"
(cd "$work/src" && apt-get "${apt_private[@]}" source --download-only criu) >"$work/source.log" 2>&1 || true
orig=$(ls "$work"/src/criu_*.orig.tar.* 2>/dev/null | head -n1 || true)
[ -n "$orig" ] || die "apt-get source did not deliver criu's .orig tarball: $(tail -n3 "$work/source.log")"
say "building $(basename "$orig") (about a minute)"
tar -xf "$orig" -C "$work/src"
tree=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'criu*' | head -n1)
[ -n "$tree" ] || die "unexpected layout in $(basename "$orig")"
make -C "$tree" -j"$(nproc)" criu >"$work/build.log" 2>&1 ||
  die "build failed; last lines:
$(tail -n 20 "$work/build.log")"

install -d -m 0755 "$PREFIX"
install -m 0755 "$tree/criu/criu" "$PREFIX/criu"
install -m 0755 "$tree/scripts/criu-ns" "$PREFIX/criu-ns"
say "installed $PREFIX/criu and $PREFIX/criu-ns"

probe || die "the freshly built criu does not pass the probe (see the messages above)"
