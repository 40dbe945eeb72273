#!/usr/bin/env bash
# Build the VM's initramfs: busybox, the modules needed to mount the host over 9p (with a
# modules.dep made by depmod, so busybox modprobe resolves dependencies), and init.
# Usage: mkinitramfs.sh KERNEL_DIR ABI OUT.cpio.gz
set -euo pipefail
kdir=$1 abi=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,host,tmp,lib/modules/"$abi"}
cp /bin/busybox "$root/bin/busybox"
for app in sh mount umount mkdir modprobe chroot poweroff sleep cat echo; do
  ln -s busybox "$root/bin/$app"
done
# The 9p root filesystem and its transport, with every dependency modprobe -D names.
src=$kdir/lib/modules/$abi
for m in 9p 9pnet_virtio virtio_pci; do
  modprobe -d "$kdir" -S "$abi" -D "$m" | awk '$1=="insmod"{print $2}'
done | sort -u | while read -r ko; do
  rel=${ko#"$src"/}
  mkdir -p "$root/lib/modules/$abi/$(dirname "$rel")"
  # 6.12's modules are xz-compressed, which busybox's insmod does not read: unpack them.
  case $ko in
    *.ko.xz) xz -dc "$ko" > "$root/lib/modules/$abi/${rel%.xz}" ;;
    *.ko.zst) zstd -qdc "$ko" > "$root/lib/modules/$abi/${rel%.zst}" ;;
    *) cp "$ko" "$root/lib/modules/$abi/$rel" ;;
  esac
done
cp "$src/modules.order" "$src/modules.builtin" "$src/modules.builtin.modinfo" "$root/lib/modules/$abi/" 2>/dev/null || true
depmod -b "$root" "$abi"
install -m 0755 "$here/init" "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp"
mv "$out.tmp" "$out"
