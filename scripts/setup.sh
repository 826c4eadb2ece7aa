#!/usr/bin/env bash
# Installs everything containerd-integrity needs on Debian 12 (as root) and builds it:
# Debian packages, npm dependencies (with the native addon), the TypeScript build.
# Idempotent: a second run only checks. Used by scripts/demo.sh, scripts/test.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 2
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup.sh: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 2
fi

# Runtime: containerd + runc run the containers, erofs-utils gives fsck.erofs
# (a second opinion on our images), cryptsetup-bin gives veritysetup (the
# oracle the tests compare our dm-verity trees with), skopeo/umoci handle OCI
# layouts. Tests: qemu + Debian's kernel + busybox-static for the VM suite,
# Go and containerd's sources for containerd's snapshotter conformance suite.
# GNU time: peak RSS in bench/convert.ts.
packages=(
  ca-certificates tar gzip zstd kmod cpio attr util-linux
  containerd runc erofs-utils cryptsetup-bin skopeo umoci docker-registry
  qemu-system-x86 linux-image-amd64 busybox-static
  golang-go golang-github-containerd-containerd-dev
  python3 make g++ systemd time
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian starts containerd and docker-registry as services; the demo and the
# tests start their own instances on private sockets and ports instead.
for service in containerd docker-registry; do
  if systemctl is-active --quiet "$service" 2>/dev/null; then
    log "stopping the system $service service (the demo and tests start their own)"
    systemctl stop "$service" || true
  fi
done

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies (builds the native addon)"
  npm ci --no-audit --no-fund
fi
if [ ! -f build/Release/integrity_native.node ] || [ -n "$(find native binding.gyp -newer build/Release/integrity_native.node 2>/dev/null)" ]; then
  log "building the native addon"
  npm run build:native
fi
log "compiling TypeScript"
npm run build --silent
