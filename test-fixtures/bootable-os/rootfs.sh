#!/bin/bash
# The expensive half of the bootable test OS (see build.sh, which caches its result): Debian
# bookworm from the mirror, laid out as an OSTree commit wants it.
#
#   rootfs.sh ROOTFS LOGDIR MIRROR SUITE
#
# debootstrap --variant=minbase, then apt-get (no recommends, no documentation) installs the
# kernel, systemd, dracut and ostree-boot (ostree-prepare-root and its dracut module). Layout:
#   /usr/etc           the default configuration (the deployment's /etc is made from it)
#   /usr/lib/modules/KVER/{vmlinuz,initramfs.img}   the kernel and a generic (not host-only)
#                      initramfs holding ostree-prepare-root
#   /boot, /var        empty (the sysroot's /boot; the stateroot's /var, filled by tmpfiles)
#   /home → var/home, /root → var/roothome, /opt, /srv, /mnt → var/…, /usr/local →
#   ../var/usrlocal, /media → run/media, /ostree → sysroot/ostree, /sysroot an empty directory.
# Writes the kernel version to LOGDIR/kernel-version. Needs root.
set -euo pipefail
root="$1" logs="$2" mirror="$3" suite="$4"
PACKAGES="linux-image-amd64 systemd-sysv dracut ostree-boot"
log() { echo "build.sh: $*" >&2; }

log "debootstrap $suite (minbase) from $mirror"
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$logs/debootstrap.log" 2>&1 \
  || { tail -n 20 "$logs/debootstrap.log" >&2; log "debootstrap failed (log: $logs/debootstrap.log)"; exit 1; }

# No documentation, manual pages or translations.
cat >"$root/etc/dpkg/dpkg.cfg.d/01-larch-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
# Kernel modules a virtual machine does not need (graphics, sound, media, wireless, wired NICs
# other than virtio, …). The kernel package ships them under /lib/modules.
for dir in drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/infiniband \
  drivers/staging drivers/iio drivers/isdn drivers/bluetooth drivers/hwmon drivers/input/touchscreen \
  drivers/comedi drivers/thunderbolt drivers/usb/gadget sound net/wireless net/bluetooth net/mac80211; do
  echo "path-exclude /lib/modules/*/kernel/$dir/*" >>"$root/etc/dpkg/dpkg.cfg.d/01-larch-nodoc"
done
# A generic initramfs (not tied to the build host) with ostree's module.
mkdir -p "$root/etc/dracut.conf.d"
cat >"$root/etc/dracut.conf.d/10-larch.conf" <<'CFG'
hostonly="no"
add_dracutmodules+=" systemd ostree "
omit_dracutmodules+=" plymouth i18n network network-legacy ifcfg nfs iscsi nbd fcoe lvm mdraid dmraid crypt multipath btrfs "
CFG
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/01-larch-norecommends"

mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount -t sysfs sysfs "$root/sys"
trap 'umount -l "$root/proc" "$root/dev" "$root/sys" 2>/dev/null || true' EXIT
log "apt-get install $PACKAGES"
chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 apt-get install -y -q $PACKAGES \
  >"$logs/apt.log" 2>&1 || { tail -n 20 "$logs/apt.log" >&2; log "apt-get failed (log: $logs/apt.log)"; exit 1; }
kver=$(ls "$root/usr/lib/modules" | sort -V | tail -n1)
# dracut's trigger made /boot/initrd.img-KVER once every package was configured; use it when it
# holds ostree-prepare-root (10-larch.conf adds the module), else make the initramfs again.
has_prepare_root() {
  chroot "$root" lsinitrd "$1" >"$logs/lsinitrd.txt" 2>&1 && grep -q 'usr/lib/ostree/ostree-prepare-root$' "$logs/lsinitrd.txt"
}
if [ -f "$root/boot/initrd.img-$kver" ] && has_prepare_root "/boot/initrd.img-$kver"; then
  mv "$root/boot/initrd.img-$kver" "$root/usr/lib/modules/$kver/initramfs.img"
else
  log "dracut for $kver"
  chroot "$root" dracut --force --kver "$kver" "/usr/lib/modules/$kver/initramfs.img" \
    >"$logs/dracut.log" 2>&1 || { tail -n 20 "$logs/dracut.log" >&2; log "dracut failed (log: $logs/dracut.log)"; exit 1; }
fi
has_prepare_root "/usr/lib/modules/$kver/initramfs.img" || { log "the initramfs has no ostree-prepare-root (see $logs/lsinitrd.txt)"; exit 1; }
chroot "$root" apt-get clean
umount -l "$root/proc" "$root/dev" "$root/sys"
trap - EXIT

log "OSTree layout"
cp "$root/boot/vmlinuz-$kver" "$root/usr/lib/modules/$kver/vmlinuz"
rm -rf "$root/boot" "$root/vmlinuz" "$root/vmlinuz.old" "$root/initrd.img" "$root/initrd.img.old"
mkdir "$root/boot"
echo larch-test >"$root/etc/hostname"
# An empty machine-id makes the first boot generate one; systemd-firstboot would then stop the
# boot to ask for a locale, a time zone and a root password on the console.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
ln -sf /dev/null "$root/etc/systemd/system/systemd-firstboot.service"
: >"$root/etc/fstab"
mv "$root/etc" "$root/usr/etc"
rm -rf "$root/var"
mkdir "$root/var"
for d in home opt srv mnt; do rm -rf "${root:?}/$d"; ln -s "var/$d" "$root/$d"; done
rm -rf "$root/root"; ln -s var/roothome "$root/root"
rm -rf "$root/media"; ln -s run/media "$root/media"
rm -rf "$root/usr/local"; ln -s ../var/usrlocal "$root/usr/local"
rm -rf "$root/ostree"; ln -s sysroot/ostree "$root/ostree"
rm -rf "$root/sysroot"; mkdir "$root/sysroot"
rm -rf "$root/tmp"; mkdir -m 1777 "$root/tmp"
for d in proc sys dev run; do rm -rf "${root:?}/$d"; mkdir "$root/$d"; done
echo "$kver" >"$logs/kernel-version"
