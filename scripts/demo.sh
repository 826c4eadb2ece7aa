#!/usr/bin/env bash
# The demo, on built-in defaults (run as root on Debian 12):
#   1. a layer becomes one EROFS image + dm-verity hash tree, mounted read-only by the kernel;
#   2. a two-layer image is sealed (root hashes + a Delivery Kit signature) by the builder CLI;
#   3. containerd, started by this script on private paths, runs it on the integrity
#      snapshotter: every layer one EROFS file, the container's rootfs read-only;
#   4. an unsigned image and a tampered one under the protected name are refused;
#   5. dm-verity itself, in Debian's kernel under qemu (this host's kernel has no device-mapper).
# Nothing outside a temp dir is touched; everything is stopped and removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

repo=$PWD
integrityctl() { node "$repo/dist/snapshotter/cli/main.js" "$@"; }
step() { printf '\n\033[1;34m### %s\033[0m\n' "$*"; }
say() { printf '\033[0;32m%s\033[0m\n' "$*"; }

work=$(mktemp -d /tmp/integrity-demo.XXXXXX)
mnt="$work/mnt"
pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  pkill -f "containerd-shim-runc-v2 -namespace demo -id .* -address $work/" 2>/dev/null
  awk -v d="$work/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$work"
}
trap cleanup EXIT

# --------------------------------------------------------------------------------------------
step "1. A layer: tar.gz -> EROFS image + dm-verity hash tree (no root needed, nothing extracted)"
src="$work/rootfs"
mkdir -p "$src/bin" "$src/etc/app"
cp /bin/busybox "$src/bin/busybox"
ln -s busybox "$src/bin/sh"
ln "$src/bin/busybox" "$src/bin/ls"
printf 'greeting = "hello from an EROFS layer"\n' > "$src/etc/app/config.toml"
: > "$src/etc/.wh.motd"            # OCI whiteout: deletes /etc/motd of a lower layer
tar -C "$src" --numeric-owner --owner=0 --group=0 --sort=name -czf "$work/layer.tar.gz" .
integrityctl layer convert "$work/layer.tar.gz" -o "$work/layer.erofs" --hash-file "$work/layer.verity" --json | tee "$work/result.json"
root_hash=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1])).rootHash' "$work/result.json")
veritysetup format --data-block-size=4096 --hash-block-size=4096 --no-superblock \
  --salt=dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b \
  "$work/layer.erofs" "$work/check.verity" | grep 'Root hash'
cmp "$work/layer.verity" "$work/check.verity" && say "veritysetup agrees: same root hash, byte-identical hash tree"
fsck.erofs "$work/layer.erofs" && say "fsck.erofs: no errors"
mkdir -p "$mnt"
mount -t erofs -o ro "$work/layer.erofs" "$mnt"
(cd "$mnt" && find . \( -type l -printf '%M %4U:%-4G %8s  %p -> %l\n' \) -o -printf '%M %4U:%-4G %8s  %p\n' | sort -k4)
say "bin/ls and bin/busybox are one inode ($(stat -c %i "$mnt/bin/ls") = $(stat -c %i "$mnt/bin/busybox")); etc/motd is an overlay whiteout ($(stat -c '%F %t:%T' "$mnt/etc/motd"))"
umount "$mnt"
say "root hash of this layer: $root_hash"

# --------------------------------------------------------------------------------------------
step "2. The builder side: a two-layer image (umoci), sealed with a signing certificate"
oci="$work/oci"
umoci init --layout "$oci"
umoci new --image "$oci:1.0"
umoci unpack --image "$oci:1.0" "$work/bundle" >/dev/null
r="$work/bundle/rootfs"
mkdir -p "$r/bin" "$r/etc" "$r/run" "$r/var"
cp /bin/busybox "$r/bin/busybox"
for applet in sh ls cat echo touch stat mount id hostname; do ln -s busybox "$r/bin/$applet"; done
ln -s ../run "$r/var/run"
printf 'Welcome (layer 1)\n' > "$r/etc/motd"
umoci repack --image "$oci:1.0" "$work/bundle"
rm -rf "$work/bundle"                      # umoci diffs a repack against its last unpack
umoci unpack --image "$oci:1.0" "$work/bundle" >/dev/null
printf 'greeting = "hello from a sealed image"\n' > "$r/etc/app.toml"
rm "$r/etc/motd"
umoci repack --image "$oci:1.0" "$work/bundle"
umoci config --image "$oci:1.0" --config.cmd /bin/sh
umoci ls --layout "$oci"

pki="$work/pki"
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" -out "$pki/ca.pem" \
  -days 30 -subj "/CN=demo root CA" -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/signer.key" -out "$pki/signer.csr" \
  -subj "/CN=demo image signer" 2>/dev/null
openssl x509 -req -in "$pki/signer.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
  -extfile <(printf 'basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\n') -out "$pki/signer.pem" 2>/dev/null
say "a demo CA and a signer certificate (ECDSA P-256), made for this run only"

integrityctl image seal "$oci:1.0" --key "$pki/signer.key" --cert "$pki/signer.pem" -o "$work/sealed"
integrityctl image verify "$work/sealed:1.0" --trust "$pki/ca.pem"

# --------------------------------------------------------------------------------------------
step "3. containerd on the integrity snapshotter (both started here, on private paths)"
mkdir -p "$work/trust" "$work/ctd"
cp "$pki/ca.pem" "$work/trust/demo-ca.pem"
cat > "$work/snapshotter.toml" <<TOML
root = "$work/snapshotter"
address = "$work/snapshotter.sock"
containerd_address = "$work/ctd/containerd.sock"

[rootfs]
protected_images = ["demo.local/*"]

[signatures]
required_images = ["demo.local/*"]
trust_dirs = ["$work/trust"]
TOML
cat > "$work/ctd/config.toml" <<TOML
version = 2
root = "$work/ctd/root"
state = "$work/ctd/state"
[grpc]
  address = "$work/ctd/containerd.sock"
[proxy_plugins.integrity]
  type = "snapshot"
  address = "$work/snapshotter.sock"
TOML
# Started with node itself (not the integrityctl function) so that $! is the daemon's pid.
node "$repo/dist/snapshotter/cli/main.js" snapshotter serve --config "$work/snapshotter.toml" 2> "$work/snapshotter.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/snapshotter.sock" ] && break; sleep 0.1; done
containerd --config "$work/ctd/config.toml" 2> "$work/containerd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/ctd/containerd.sock" ] && break; sleep 0.1; done
ctr() { command ctr --address "$work/ctd/containerd.sock" --namespace demo "$@"; }
ctr version >/dev/null && say "containerd $(containerd --version | cut -d" " -f3) is up, with the integrity snapshotter as a proxy plugin"
run() {
  ctr run --rm --snapshotter integrity --runc-root "$work/ctd/runc" --fifo-dir "$work/ctd/fifo" \
    --mount type=tmpfs,src=tmpfs,dst=/tmp,options=rw "$@"
}

tar -C "$work/sealed" -cf "$work/sealed.tar" .
ctr image import --snapshotter integrity --base-name demo.local/app "$work/sealed.tar"
say "imported; the snapshotter checked the signature and turned each layer into one EROFS file:"
find "$work/snapshotter/snapshots" -name 'layer.*' -printf '  %P  %s bytes\n' | sort

run demo.local/app:1.0 c1 /bin/sh -c '
  echo "in the container: $(cat /etc/app.toml)"
  test -e /etc/motd && echo "UNEXPECTED: /etc/motd" || echo "/etc/motd deleted by layer 2 (whiteout)"
  echo "/var/run -> $(readlink /var/run)"
  touch /new-file 2>&1 || true
  echo scratch > /tmp/scratch && echo "/tmp is writable: $(cat /tmp/scratch)"'
say "the rootfs is one read-only overlay of EROFS layers plus the mountpoints layer; /tmp is the runtime's tmpfs"
integrityctl status --root "$work/snapshotter" || true

# --------------------------------------------------------------------------------------------
step "4. What the node refuses (in a fresh namespace: snapshots are per namespace, so every layer is checked again)"
ctr() { command ctr --address "$work/ctd/containerd.sock" --namespace refusals "$@"; }
umoci init --layout "$work/unsigned"
skopeo copy --quiet "oci:$oci:1.0" "oci:$work/unsigned:1.0"
tar -C "$work/unsigned" -cf "$work/unsigned.tar" .
say "an unsigned image under the protected name demo.local/*:"
ctr image import --snapshotter integrity --base-name demo.local/unsigned "$work/unsigned.tar" 2>&1 | tail -1 || true

say "the sealed image with one signed layer root hash edited (the signature no longer matches):"
node --input-type=module - "$work/sealed" "$work/tampered" <<'JS'
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
const [src, dst] = process.argv.slice(2);
cpSync(src, dst, { recursive: true });
const blob = (d) => join(dst, 'blobs', 'sha256', d.slice('sha256:'.length));
const index = JSON.parse(readFileSync(join(dst, 'index.json')));
const manifest = JSON.parse(readFileSync(blob(index.manifests[0].digest)));
const key = 'io.containerd-integrity.layer-root-hashes';
const hashes = manifest.annotations[key].split(',');
hashes[0] = '0'.repeat(64);
manifest.annotations[key] = hashes.join(',');
const bytes = Buffer.from(JSON.stringify(manifest));
const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
writeFileSync(blob(digest), bytes);
index.manifests[0] = { ...index.manifests[0], digest, size: bytes.length };
writeFileSync(join(dst, 'index.json'), JSON.stringify(index));
JS
tar -C "$work/tampered" -cf "$work/tampered.tar" .
ctr image import --snapshotter integrity --base-name demo.local/tampered "$work/tampered.tar" 2>&1 | tail -1 || true
say "the snapshotter's log says why (fields: image, layer, check, reason):"
node -e '
  for (const line of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) {
    if (!line.includes("\"layer refused\"")) continue;
    const r = JSON.parse(line);
    console.log(`  ${r.image}, layer ${r.layer}: ${r.check} check: ${r.reason}`);
  }' "$work/snapshotter.log"

# --------------------------------------------------------------------------------------------
step "5. dm-verity, in Debian's kernel under qemu (the host kernel has no device-mapper)"
node "$repo/dist/test/vm/support/run.js" --quiet --timeout 240000 -- /usr/bin/bash "$repo/scripts/demo-verity-guest.sh"
