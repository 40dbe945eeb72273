#!/bin/bash
# Guest stage 2, run by init inside the chroot of the host's root: writable scratch mounts,
# module loading through kmod's modprobe over the depmod'ed Debian module tree, the emulated
# NVDIMM as device-DAX (/dev/dax0.0) and as an ext4 -o dax mount (/mnt/pmem), ckpt.ko, then
# the command. Writes the command's exit status and the kernel log into the run directory.
RUN=$1
# shellcheck source=/dev/null
. "$RUN/env"
exec </dev/ttyS1 >/dev/ttyS1 2>&1
[ -z "${VM_INTERACTIVE:-}" ] || stty sane 2>/dev/null
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mkdir -p /dev/pts /dev/shm /run/lock
mount -t devpts devpts /dev/pts
# What udev would add to a devtmpfs: bash's <(...) and programs opening /dev/stdin need them.
ln -sfn /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ip link set lo up 2>/dev/null
# Hang diagnostics: sysrq's dumps (scripts/vm/hang-report presses sysrq-w and sysrq-l through
# QEMU's monitor), and the hung-task detector at 60 s instead of 120, which run-all and
# vm/run count as a failure.
echo 1 > /proc/sys/kernel/sysrq
echo 60 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
# A soft lockup ends the run at once (panic=-1 reboots, QEMU runs with -no-reboot) instead of
# leaving a livelocked guest to --timeout; vm/run then prints the console's tail.
echo 1 > /proc/sys/kernel/softlockup_panic

status() { echo "$1" > "$RUN/status"; }
# Power off as soon as the status is written, without this shell's exit: the last exit of bash
# drops the 9p inodes of everything the suite mapped, and freeing their page cache with page
# poisoning under TCG was seen to hold a vCPU past the soft-lockup limit (v9fs_evict_inode ->
# truncate_inode_pages_range -> __kernel_poison_pages, 26 s, after ckpt.ko was unloaded).
poweroff_now() { sync; echo o > /proc/sysrq-trigger; sleep 600; exit 0; }
die() { echo "vm: $*"; dmesg > "$RUN/dmesg"; status 126; poweroff_now; }

mkdir -p /run/ckpt-modprobe.d
# -C: an empty configuration, so host install hooks (ndctl load-keys, ...) do not run here.
modprobe -C /run/ckpt-modprobe.d -d "$VM_KERNEL_DIR" -S "$VM_ABI" -a nfit nd_pmem dax_pmem device_dax ext4 $VM_MODULES ||
  die "modprobe failed"
# KVM, when the CPU model offers SVM (TCG's -cpu max does): a real secondary MMU for
# track_lostwrite_test's secondary_mmu_kvm. Not fatal: another VM_CPU may lack it.
grep -qw svm /proc/cpuinfo &&
  modprobe -C /run/ckpt-modprobe.d -d "$VM_KERNEL_DIR" -S "$VM_ABI" -a kvm kvm_amd 2>/dev/null

if [ "$VM_PMEM" = 1 ]; then
  # The NVDIMM has a label area; its namespaces persist in the backing file. Create them on a
  # blank label area: a device-DAX namespace and an fsdax one for the ext4 -o dax mount.
  for i in $(seq 50); do [ -e /sys/bus/nd/devices/region0 ] && break; sleep 0.1; done
  [ -e /sys/bus/nd/devices/region0 ] || die "no NVDIMM region"
  if ! ndctl list -N -r region0 | grep -q '"mode":"devdax"'; then
    # A blank label area reads as one label-less namespace: initialise the labels first.
    { ndctl disable-region region0 && ndctl init-labels -f all && ndctl enable-region region0; } \
      >/dev/null 2>&1 || die "ndctl could not initialise the NVDIMM's labels"
    ndctl create-namespace -r region0 -m devdax -a 2M -s "$VM_DAX_SIZE" >/dev/null ||
      die "ndctl create-namespace devdax failed"
  fi
  if ! ndctl list -N -r region0 | grep -q '"mode":"fsdax"'; then
    ndctl create-namespace -r region0 -m fsdax >/dev/null ||
      die "ndctl create-namespace fsdax failed"
  fi
  for i in $(seq 50); do [ -e /dev/dax0.0 ] && ls /dev/pmem* >/dev/null 2>&1 && break; sleep 0.1; done
  pmem=$(ls /dev/pmem* 2>/dev/null | head -n1)
  [ -e /dev/dax0.0 ] && [ -n "$pmem" ] || die "DAX devices did not appear"
  # stride = 2 MiB: ext4 then places large extents 2 MiB-aligned, so DAX files can be mapped by
  # PMDs (track_lostwrite_test's private_dax_mapping needs them).
  blkid "$pmem" >/dev/null 2>&1 || mkfs.ext4 -q -F -b 4096 -E stride=512,stripe_width=512 "$pmem" || die "mkfs.ext4 $pmem failed"
  mkdir -p /mnt/pmem
  mount -o dax "$pmem" /mnt/pmem || die "mount -o dax $pmem failed"
fi

if [ -n "$VM_CKPT_KO" ]; then
  # hook_stay_armed: one patch of handle_mm_fault() per boot, not one per arm/disarm (TCG was
  # seen stuck on a freshly patched entry; kmod/fault.c).
  # /dev/ckpt as a udev rule would make it (udev/60-ckpt.rules; the guest has no udev): mode
  # 0660, group ckpt (the host's, else gid 7577). Tests that run as uid 65534 get that group as
  # a supplementary one (CKPT_GID below); without it they cannot open the device.
  gid=$(getent group ckpt | cut -d: -f3)
  export CKPT_GID=${gid:-7577}
  insmod "$VM_CKPT_KO" hook_stay_armed=1 dev_mode=0660 dev_gid="$CKPT_GID" ||
    die "insmod $VM_CKPT_KO failed"
fi
# The kernel's text symbols, for hang-report to name a stuck vCPU's RIP from outside (Debian's
# image ships no System.map; a module reloaded later moves, the kernel does not).
grep -i ' t ' /proc/kallsyms > "$RUN/kallsyms" 2>/dev/null
sync  # the host reads it if the guest hangs (the project mount caches: init)

cd "$VM_CWD" || die "no directory $VM_CWD in the guest"
bash "$RUN/cmd"
rc=$?
# The module must unload cleanly once its users are gone.
if [ -n "$VM_CKPT_KO" ] && grep -q '^ckpt ' /proc/modules; then
  rmmod ckpt || { echo "vm: rmmod ckpt failed"; [ "$rc" -ne 0 ] || rc=127; }
fi
umount /mnt/pmem 2>/dev/null
dmesg > "$RUN/dmesg"
status "$rc"
poweroff_now
