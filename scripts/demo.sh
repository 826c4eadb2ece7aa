#!/usr/bin/env bash
# The demo, on built-in defaults: sets the machine up, builds a sample layer,
# converts it into an EROFS image + dm-verity hash tree, mounts the image
# read-only through the kernel and shows what is inside and its root hash.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

integrityctl() { node "$PWD/dist/snapshotter/cli/main.js" "$@"; }
step() { printf '\n\033[1;34m### %s\033[0m\n' "$*"; }

work=$(mktemp -d /tmp/integrity-demo.XXXXXX)
mnt="$work/mnt"
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  rm -rf "$work"
}
trap cleanup EXIT

step "1. A sample OCI layer: busybox, a config file, a symlink, a hardlink, a whiteout"
src="$work/rootfs"
mkdir -p "$src/bin" "$src/etc/app" "$src/var/log"
cp /bin/busybox "$src/bin/busybox"
ln -s busybox "$src/bin/sh"
ln "$src/bin/busybox" "$src/bin/ls"
printf 'greeting = "hello from an EROFS layer"\n' > "$src/etc/app/config.toml"
: > "$src/etc/.wh.motd"            # OCI whiteout: deletes /etc/motd of a lower layer
tar -C "$src" --numeric-owner --owner=0 --group=0 --sort=name -czf "$work/layer.tar.gz" .
ls -l "$work/layer.tar.gz"

step "2. integrityctl layer convert: tar.gz -> EROFS + dm-verity hash tree (no root, no extraction)"
integrityctl layer convert "$work/layer.tar.gz" -o "$work/layer.erofs" --hash-file "$work/layer.verity" --json | tee "$work/result.json"
root_hash=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1])).rootHash' "$work/result.json")

step "3. The same root hash from veritysetup (the reference implementation)"
veritysetup format --data-block-size=4096 --hash-block-size=4096 --no-superblock \
  --salt=dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b \
  "$work/layer.erofs" "$work/check.verity" | grep 'Root hash'
cmp "$work/layer.verity" "$work/check.verity" && echo "hash trees are byte-identical"

step "4. Mounted read-only by the kernel (EROFS), and fsck.erofs agrees"
fsck.erofs "$work/layer.erofs" && echo "fsck.erofs: no errors"
mkdir -p "$mnt"
mount -t erofs -o ro "$work/layer.erofs" "$mnt"
(cd "$mnt" && find . \( -type l -printf '%M %4U:%-4G %8s  %p -> %l\n' \) -o -printf '%M %4U:%-4G %8s  %p\n' | sort -k4)
echo
echo "etc/app/config.toml: $(cat "$mnt/etc/app/config.toml")"
echo "bin/ls and bin/busybox share inode: $(stat -c %i "$mnt/bin/ls") = $(stat -c %i "$mnt/bin/busybox")"
echo "whiteout etc/motd is an overlay whiteout: $(stat -c '%F %t:%T' "$mnt/etc/motd")"
touch "$mnt/new-file" 2>/dev/null && echo "UNEXPECTED: image is writable" || echo "writing fails: the image is read-only"

step "Root hash of this layer: $root_hash"
