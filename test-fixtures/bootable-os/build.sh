#!/bin/bash
# Builds the bootable test OS and commits it with `larch commit --bootable`:
#
#   build.sh [VERSION]     VERSION: v1 (default), v2, v3 or v3-panic (see versions/README.md)
#
# Versions, each a commit on branch larch/testos/x86_64 whose parent is the version it derives
# from (building one builds its parent first):
#   v1        the base: the cached tree + overlay/
#   v2        v1 + versions/v2/ (a file added and one changed in /usr, a changed default in /usr/etc)
#   v3        v2 + versions/v3/ (boots, but its required health check fails)
#   v3-panic  v2 with an initramfs that has no /init: the kernel panics before init
# The branch points at the version named last; commits/VERSION records each version's commit.
#
# Stages, each cached:
#  1. rootfs.sh: Debian bookworm laid out for OSTree (minutes: debootstrap from the mirror).
#     Cached under ${XDG_CACHE_HOME:-~/.cache}/larch-bootable-os/<hash>, the hash covering
#     rootfs.sh, the mirror and the suite.
#  2. initramfs.sh: a small uncompressed initramfs (virtio, ext4, systemd, ostree), in a chroot of
#     that tree (a minute). Cached beside it by the hash of initramfs.sh.
#  3. The commit of that tree plus overlay/ (the test OS's own units: a report printed on the
#     serial console at the end of start-up, tmpfiles for the /var directories, units masked for
#     a fast boot), the version's files and the version marker (seconds). Recommitted when any of
#     those inputs change. Fixed timestamps, one day apart per version.
#
# Extra files: LARCH_TEST_OS_EXTRA=DIR overlays DIR (e.g. DIR/usr/bin/…) on every version's tree
# after the version's own files; its contents are part of the cache key.
#
# Prints the cache directory on the last line of stdout. It holds rootfs/, repo/,
# commits/VERSION ("COMMIT KEY"), kernel-version, initramfs-*.img and build-seconds (stage 1's
# duration).
#
# Needs root (debootstrap, chroot, owners in the bare repository) and debootstrap. Network: only
# the Debian mirror ($LARCH_DEBIAN_MIRROR, default the one apt uses on this machine).
set -euo pipefail

VERSION="${1:-v1}"
# version → parent, layers (directories under versions/, applied in order), days after v1, initramfs
version_info() {
  case "$1" in
    v1) PARENT='' LAYERS='' DAYS=0 INITRAMFS=small ;;
    v2) PARENT=v1 LAYERS='v2' DAYS=1 INITRAMFS=small ;;
    v3) PARENT=v2 LAYERS='v2 v3' DAYS=2 INITRAMFS=small ;;
    v3-panic) PARENT=v2 LAYERS='v2' DAYS=3 INITRAMFS=no-init ;;
    *) return 1 ;;
  esac
}
version_info "$VERSION" || { echo "build.sh: unknown version '$VERSION' (expected v1, v2, v3 or v3-panic)" >&2; exit 2; }
EXTRA="${LARCH_TEST_OS_EXTRA:-}"
if [ -n "$EXTRA" ] && [ ! -d "$EXTRA" ]; then
  echo "build.sh: LARCH_TEST_OS_EXTRA=$EXTRA is not a directory" >&2
  exit 2
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
LARCH="${LARCH:-node $REPO_ROOT/apps/cli/dist/main.js}"
SUITE=bookworm
REF=larch/testos/x86_64
TIMESTAMP=1747699200   # 2025-05-20, the date of the mirror snapshot (v1; later versions a day apart)

default_mirror() {
  local uri
  uri=$(grep -hoE '^URIs: *[^ ]+/debian$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | sed 's/^URIs: *//') || true
  [ -n "$uri" ] || uri=$(grep -hoE '^deb +[^ ]+/debian +' /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $2}') || true
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="${LARCH_DEBIAN_MIRROR:-$(default_mirror)}"
log() { echo "build.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "build.sh: must run as root (debootstrap and chroot)" >&2
  exit 1
fi
for tool in debootstrap chroot flock; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (apt-get install debootstrap)" >&2; exit 1; }
done

KEY=$( { cat "$HERE/rootfs.sh"; echo "$MIRROR $SUITE"; } | sha256sum | cut -c1-16)
INITRAMFS_KEY=$( { cat "$HERE/initramfs.sh"; command -v lz4 || true; } | sha256sum | cut -c1-16)
# Names, modes, types, symlink targets and contents of a directory's files.
tree_key() {
  [ -n "$1" ] || { echo none; return; }
  (cd "$1" && find . -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %a %F %N' | sha256sum | cut -c1-16
   find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r cat | sha256sum | cut -c1-16) | tr '\n' -
}
CACHE_BASE="${XDG_CACHE_HOME:-$HOME/.cache}/larch-bootable-os"
OUT="$CACHE_BASE/$KEY"
mkdir -p "$CACHE_BASE"

# One builder at a time (a second caller waits, then finds the result).
exec 9>"$CACHE_BASE/.lock"
flock 9

if [ ! -f "$OUT/build-seconds" ]; then
  work="$CACHE_BASE/.work-$KEY"
  rm -rf "$work"
  mkdir -p "$work"
  start=$SECONDS
  bash "$HERE/rootfs.sh" "$work/rootfs" "$work" "$MIRROR" "$SUITE"
  echo $((SECONDS - start)) >"$work/build-seconds"
  mkdir -p "$work/repo"
  $LARCH init --repo="$work/repo" --mode=bare
  rm -rf "$OUT"
  mv "$work" "$OUT"
fi

# Stage 2: the small initramfs.
KVER=$(cat "$OUT/kernel-version")
SMALL_INITRAMFS="$OUT/initramfs-$INITRAMFS_KEY.img"
if [ ! -f "$SMALL_INITRAMFS" ]; then
  tree="$OUT/.initramfs-tree"
  rm -rf "$tree"
  cp -al "$OUT/rootfs" "$tree"
  bash "$HERE/initramfs.sh" "$tree" "$KVER" "$SMALL_INITRAMFS.tmp" "$OUT" || { rm -rf "$tree"; exit 1; }
  rm -rf "$tree"
  mv "$SMALL_INITRAMFS.tmp" "$SMALL_INITRAMFS"
  find "$OUT" -maxdepth 1 -name 'initramfs-*.img' ! -path "$SMALL_INITRAMFS" -delete
fi

# Stage 3: the commit of VERSION (its parent's first).
commit_version() {
  local version="$1" PARENT LAYERS DAYS INITRAMFS
  version_info "$version"
  local parent_commit=none
  if [ -n "$PARENT" ]; then
    commit_version "$PARENT"
    parent_commit=$(cut -d' ' -f1 "$OUT/commits/$PARENT")
  fi
  local key layer
  key="$(tree_key "$HERE/overlay")$INITRAMFS-$INITRAMFS_KEY-$parent_commit-$(tree_key "$EXTRA")"
  for layer in $LAYERS; do key="$key-$(tree_key "$HERE/versions/$layer")"; done
  key=$(echo "$key" | sha256sum | cut -c1-16)
  local record="$OUT/commits/$version"
  if [ -s "$record" ] && [ "$(cut -d' ' -f2 "$record")" = "$key" ]; then return; fi
  # A hardlinked copy of the cached tree; every file added or replaced is first unlinked, so
  # the cached tree's files are never written through a hardlink.
  local stage="$OUT/stage-$version"
  rm -rf "$stage"
  cp -al "$OUT/rootfs" "$stage"
  local dir
  for dir in "$HERE/overlay" ${LAYERS:+$(for layer in $LAYERS; do echo "$HERE/versions/$layer"; done)} $EXTRA; do
    (cd "$dir" && find . ! -type d) | while read -r f; do rm -f "$stage/$f"; done
    cp -a --no-preserve=ownership "$dir/." "$stage/"
  done
  local initramfs="$stage/usr/lib/modules/$KVER/initramfs.img"
  rm -f "$initramfs"
  case "$INITRAMFS" in
    small) cp "$SMALL_INITRAMFS" "$initramfs" ;;
    # A valid initramfs holding one file and no /init: the kernel then tries to mount root= itself
    # (it cannot: UUID= needs an initramfs, and virtio_blk is a module) and panics.
    no-init)
      mkdir "$stage/.no-init"
      echo "this initramfs has no /init" >"$stage/.no-init/no-init"
      # The tree's own cpio (dracut's dependency), so the host needs none.
      chroot "$stage" /bin/sh -c 'cd /.no-init && echo no-init | cpio -o -H newc --quiet' >"$initramfs"
      rm -r "$stage/.no-init" ;;
  esac
  echo "$version" >"$stage/usr/lib/larch-test-version"
  chown -R root:root "$stage/usr/lib/larch-test-version" "$initramfs"
  log "larch commit $REF ($version)"
  local commit
  commit=$($LARCH commit --repo="$OUT/repo" --branch="$REF" --bootable --parent="$parent_commit" \
    --timestamp="@$((TIMESTAMP + DAYS * 86400))" --subject="larch test OS $version" \
    --add-metadata-string=version="$version" \
    --tree=dir="$stage") || { rm -rf "$stage"; exit 1; }
  rm -rf "$stage"
  mkdir -p "$OUT/commits"
  echo "$commit $key" >"$record.tmp"
  mv "$record.tmp" "$record"
}
commit_version "$VERSION"
$LARCH refs --repo="$OUT/repo" --create="$REF" --force "$(cut -d' ' -f1 "$OUT/commits/$VERSION")" >/dev/null
echo "$OUT"
