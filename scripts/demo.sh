#!/usr/bin/env bash
# make demo: the main job end to end, in the VM with ckpt.ko and the emulated NVDIMM
# (/dev/dax0.0). make demo-host (or demo.sh --host): the same on this machine with a file store
# and a userspace tracker, for machines where the module can't be loaded.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--host" ]; then
  d=$(mktemp -d)
  trap 'rm -rf "$d"' EXIT
  exec "$top/scripts/demo-run.sh" "$d/heat.store" "$d/heat-ref.store"
fi
echo "booting the VM (Debian 6.1 kernel under QEMU, ckpt.ko, emulated NVDIMM)..."
env=()
[ -z "${CKPT_BIN:-}" ] || env=(--env "CKPT_BIN=$CKPT_BIN")
exec "$top/scripts/vm/run" --timeout 900 ${env[@]+"${env[@]}"} -- "$top/scripts/demo-run.sh" /dev/dax0.0 /mnt/pmem/heat-ref.store
