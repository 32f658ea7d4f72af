#!/bin/bash
# Builds the bootable test OS and commits it with `larch commit --bootable`:
#
#   build.sh [VERSION]          VERSION defaults to v1; it only changes /usr/lib/larch-test-version
#
# Two stages, each cached:
#  1. rootfs.sh: Debian bookworm laid out for OSTree (minutes: debootstrap from the mirror).
#     Cached under ${XDG_CACHE_HOME:-~/.cache}/larch-bootable-os/<hash>, the hash covering
#     rootfs.sh, the mirror and the suite.
#  2. The commit of that tree plus overlay/ (the test OS's own units: a report printed on the
#     serial console at the end of start-up, tmpfiles for the /var directories) and the version
#     marker, on branch larch/testos/x86_64 of a bare repository beside it (seconds). Recommitted
#     when overlay/ changes. Fixed timestamp; a new VERSION's parent is the branch's head, so v2
#     built after v1 is its child.
#
# Prints the cache directory on the last line of stdout. It holds rootfs/, repo/,
# commits/VERSION (the commit checksum), kernel-version and build-seconds (stage 1's duration).
#
# Needs root (debootstrap, chroot, owners in the bare repository) and debootstrap. Network: only
# the Debian mirror ($LARCH_DEBIAN_MIRROR, default the one apt uses on this machine).
set -euo pipefail

VERSION="${1:-v1}"
case "$VERSION" in
  ''|*[!A-Za-z0-9._-]*) echo "build.sh: bad version '$VERSION' (letters, digits, . _ - only)" >&2; exit 2 ;;
esac

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
LARCH="${LARCH:-node $REPO_ROOT/apps/cli/dist/main.js}"
SUITE=bookworm
REF=larch/testos/x86_64
TIMESTAMP=@1747699200   # 2025-05-20, the date of the mirror snapshot

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
OVERLAY_KEY=$(cd "$HERE/overlay" && find . -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %a %F' | sha256sum | cut -c1-16)
OVERLAY_KEY="$OVERLAY_KEY-$(cd "$HERE/overlay" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
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

record="$OUT/commits/$VERSION"
if [ ! -s "$record" ] || [ "$(cut -d' ' -f2 "$record")" != "$OVERLAY_KEY" ]; then
  # A hardlinked copy of the cached tree with overlay/ and the marker added, committed, removed.
  stage="$OUT/stage-$VERSION"
  rm -rf "$stage"
  cp -al "$OUT/rootfs" "$stage"
  (cd "$HERE/overlay" && find . ! -type d) | while read -r f; do rm -f "$stage/$f"; done
  cp -a --no-preserve=ownership "$HERE/overlay/." "$stage/"
  echo "$VERSION" >"$stage/usr/lib/larch-test-version"
  log "larch commit $REF ($VERSION)"
  commit=$($LARCH commit --repo="$OUT/repo" --branch="$REF" --bootable \
    --timestamp="$TIMESTAMP" --subject="larch test OS $VERSION" \
    --add-metadata-string=version="$VERSION" \
    --tree=dir="$stage") || { rm -rf "$stage"; exit 1; }
  rm -rf "$stage"
  mkdir -p "$OUT/commits"
  echo "$commit $OVERLAY_KEY" >"$record.tmp"
  mv "$record.tmp" "$record"
fi
echo "$OUT"
