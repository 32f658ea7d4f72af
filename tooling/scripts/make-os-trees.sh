#!/usr/bin/env bash
# Build two versions of a real Debian OS tree for the static-delta benchmark:
#   OUT/v1  debootstrap --variant=minbase bookworm
#   OUT/v2  a copy of v1, upgraded in a chroot (apt-get upgrade, with bookworm-updates and the
#           security archive enabled) plus a few added packages (curl less vim-tiny).
# Usage: tooling/scripts/make-os-trees.sh OUT [MIRROR]
# Needs root (debootstrap, chroot). The trees are large and stay out of git (put OUT outside the
# checkout, or in an ignored directory). Re-running reuses an existing OUT/v1.
set -euo pipefail
out=${1:?usage: make-os-trees.sh OUT [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
if [ "$(id -u)" != 0 ]; then echo "make-os-trees.sh: must run as root (debootstrap, chroot)" >&2; exit 1; fi
if ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ ! -e "$out/v1/etc/debian_version" ]; then
  rm -rf "$out/v1.tmp"
  # An older point release snapshot is not reachable here, so v1 is the release as first shipped
  # by the mirror and v2 adds the updates and security suites on top.
  debootstrap --variant=minbase bookworm "$out/v1.tmp" "$mirror"
  rm -rf "$out/v1.tmp/var/cache/apt/archives/"*.deb
  mv "$out/v1.tmp" "$out/v1"
fi
rm -rf "$out/v2"
cp -a "$out/v1" "$out/v2"
cleanup() {
  for m in proc sys dev/pts dev; do umount -l "$out/v2/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
mount -t proc proc "$out/v2/proc"
mount -t sysfs sys "$out/v2/sys"
mount --bind /dev "$out/v2/dev"
mount --bind /dev/pts "$out/v2/dev/pts"
cp /etc/resolv.conf "$out/v2/etc/resolv.conf"
cat > "$out/v2/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
chroot "$out/v2" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
  'apt-get update -qq && apt-get upgrade -y -qq && apt-get install -y -qq --no-install-recommends curl less vim-tiny && apt-get clean'
cleanup
trap - EXIT
# Device nodes and sockets are not committable; debootstrap minbase leaves none outside /dev.
rm -rf "$out/v1/dev/"* "$out/v2/dev/"*
du -sh "$out/v1" "$out/v2"
