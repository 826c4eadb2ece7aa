#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs every test level:
# type check, unit, host (real kernel mounts, containerd, veritysetup, the
# containerd snapshotter conformance suite) and VM (dm-verity under qemu).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
npm test
npm run test:vm
