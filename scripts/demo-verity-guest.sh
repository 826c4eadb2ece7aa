#!/usr/bin/env bash
# Runs inside the demo's VM (Debian's kernel, dm-verity available): a layer
# converted by integrityctl is mounted through dm-verity, read, tampered with
# on disk, and read again. Called by scripts/demo.sh; not useful on its own.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
integrityctl() { node "$repo/dist/snapshotter/cli/main.js" "$@"; }
say() { printf '  [vm] %s\n' "$*"; }

w=$(mktemp -d /tmp/demo-verity.XXXXXX)
mkdir -p "$w/src/etc" "$w/src/data" "$w/mnt"
echo "this file is protected by dm-verity" > "$w/src/etc/hello"
for i in $(seq 1 4000); do printf 'line %06d of a file that spans several blocks\n' "$i"; done > "$w/src/data/big.txt"
tar -C "$w/src" --owner=0 --group=0 -cf "$w/layer.tar" .
say "kernel $(uname -r); device-mapper $(grep -q device-mapper /proc/misc && echo present)"
root=$(integrityctl layer convert "$w/layer.tar" -o "$w/layer.erofs" --hash-file "$w/layer.verity" --json |
  node -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).rootHash')
say "converted; root hash $root"

if integrityctl layer mount "$w/layer.erofs" "$w/mnt" --hash-file "$w/layer.verity" --root-hash "$(printf '0%.0s' $(seq 64))" 2>"$w/err"; then
  say "UNEXPECTED: a wrong root hash mounted"; exit 1
fi
say "a wrong root hash is refused: $(head -1 "$w/err")"

integrityctl layer mount "$w/layer.erofs" "$w/mnt" --hash-file "$w/layer.verity" --root-hash "$root"
say "mounted through $(awk -v m="$w/mnt" '$2 == m {print $1}' /proc/self/mounts): $(cat "$w/mnt/etc/hello")"

# One byte of big.txt's data in the image file, in a block of its own.
offset=$(grep -obUa 'line 002000 ' "$w/layer.erofs" | head -1 | cut -d: -f1)
printf 'X' | dd of="$w/layer.erofs" bs=1 seek="$offset" conv=notrunc status=none
echo 3 > /proc/sys/vm/drop_caches
say "flipped one byte of data/big.txt in layer.erofs at offset $offset, dropped caches"
if cat "$w/mnt/data/big.txt" >/dev/null 2>"$w/err"; then
  say "UNEXPECTED: the tampered file still reads"; exit 1
fi
say "reading data/big.txt now fails: $(sed 's/.*: //' "$w/err")"
say "etc/hello (other blocks) still reads: $(cat "$w/mnt/etc/hello")"
# status exits 1 when a layer is corrupted, which is the point here.
{ integrityctl status --json || true; } | node -e '
  const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
  for (const d of r.devices ?? []) console.log(`  [vm] device ${d.name}: status ${d.status}`);'
integrityctl layer umount "$w/mnt"
say "unmounted; device and loop devices removed"
