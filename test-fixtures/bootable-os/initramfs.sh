#!/bin/bash
# A small initramfs for the test OS (see build.sh, which caches its result): dracut, in a chroot of
# the cached tree, with only what a QEMU machine booting from a virtio disk needs — systemd,
# ostree's module (ostree-prepare-root), the virtio and ext4 drivers — lz4-compressed. The generic
# initramfs rootfs.sh made holds every storage driver (about 118 MB, gzip); decompressing and
# loading it dominated the early boot under TCG.
#
#   initramfs.sh TREE KVER OUT LOGDIR
#
# TREE is a disposable hardlinked copy of the cached tree (its /etc is /usr/etc): files are only
# added to it or renamed in it, never written through a hardlink. Needs root.
set -euo pipefail
tree="$1" kver="$2" out="$3" logs="$4"
log() { echo "build.sh: $*" >&2; }

# dracut reads /etc (its configuration, /etc/initrd-release's source, …); a symlink to usr/etc
# would be copied into the initramfs as one, and the relative links under it would then dangle.
mv "$tree/usr/etc" "$tree/etc"
mkdir -p "$tree/var/tmp/dracut.conf.d"
mount -t proc proc "$tree/proc"
mount --bind /dev "$tree/dev"
mount -t sysfs sysfs "$tree/sys"
trap 'umount -l "$tree/proc" "$tree/dev" "$tree/sys" 2>/dev/null || true' EXIT
log "dracut (small initramfs) for $kver"
chroot "$tree" env LC_ALL=C.UTF-8 dracut --force --no-hostonly --reproducible \
  --conf /dev/null --confdir /var/tmp/dracut.conf.d \
  --modules "systemd systemd-initrd dracut-systemd ostree base fs-lib rootfs-block kernel-modules udev-rules shutdown" \
  --drivers "virtio_pci virtio_blk virtio_scsi sd_mod ext4 crc32c_generic crc32c_intel" \
  --filesystems "ext4" \
  --compress=cat --no-early-microcode --tmpdir /var/tmp \
  --kver "$kver" /initramfs-small.img >"$logs/dracut-small.log" 2>&1 \
  || { tail -n 20 "$logs/dracut-small.log" >&2; log "dracut failed (log: $logs/dracut-small.log)"; exit 1; }
chroot "$tree" lsinitrd /initramfs-small.img >"$logs/lsinitrd-small.txt" 2>&1
grep -q 'usr/lib/ostree/ostree-prepare-root$' "$logs/lsinitrd-small.txt" \
  || { log "the small initramfs has no ostree-prepare-root (see $logs/lsinitrd-small.txt)"; exit 1; }
# Compressed on the host with lz4's legacy format (the kernel inflates it fastest of all it
# supports; the chroot has no lz4): GRUB reads about a third of the bytes through the firmware.
if command -v lz4 >/dev/null; then
  lz4 -q -l -9 "$tree/initramfs-small.img" "$out"
else
  log "lz4 not found (apt-get install lz4): the initramfs stays uncompressed"
  mv "$tree/initramfs-small.img" "$out"
fi
