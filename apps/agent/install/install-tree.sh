#!/bin/bash
# Lay out larch and larch-agent under DESTDIR the Debian way, ready to be copied onto a device or
# committed into an OS tree: /usr/lib/larch/{node,cli,agent}, /usr/bin/{larch,larch-agent}, the
# systemd units in /usr/lib/systemd/system (larch-finalize-staged.path and larch-agent.timer
# enabled there). Run after `pnpm build`. See apps/agent/README.md.
#
#   apps/agent/install/install-tree.sh [--node=PATH] [--mask-ostree-finalize] DESTDIR
#
# --node: the Node.js (20.19 or later) copied to /usr/lib/larch/node (default: the one on PATH);
#   it must run on the device (same architecture, a C library as new as the one it was built for).
# --mask-ostree-finalize: mask OSTree's own ostree-finalize-staged.path/.service in
#   DESTDIR/usr/etc/systemd/system (an OSTree tree's /etc), so a staged deployment is finalized
#   by larch only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
node=$(command -v node || true)
mask=0
dest=""
for a in "$@"; do
  case "$a" in
    --node=*) node=${a#--node=} ;;
    --mask-ostree-finalize) mask=1 ;;
    -*) echo "install-tree.sh: unknown option '$a'" >&2; exit 2 ;;
    *) [ -z "$dest" ] || { echo "install-tree.sh: give one DESTDIR" >&2; exit 2; }; dest=$a ;;
  esac
done
[ -n "$dest" ] || { echo "usage: install-tree.sh [--node=PATH] [--mask-ostree-finalize] DESTDIR" >&2; exit 2; }
[ -x "$node" ] || { echo "install-tree.sh: no Node.js at '$node' (give --node=PATH)" >&2; exit 1; }
ver=$("$node" -p 'process.versions.node')
case "$ver" in
  2[0-9].*|[3-9][0-9].*) ;;
  *) echo "install-tree.sh: Node.js $ver at $node is too old (20.19 or later)" >&2; exit 1 ;;
esac
for app in cli agent; do
  [ -f "$root/apps/$app/dist/main.js" ] || { echo "install-tree.sh: apps/$app is not built (run pnpm build)" >&2; exit 1; }
done

lib=$dest/usr/lib/larch
rm -rf "$lib/cli" "$lib/agent"
mkdir -p "$lib" "$dest/usr/bin" "$dest/usr/lib/systemd/system"
# A self-contained copy of each program with its production dependencies (pnpm deploy).
for app in cli agent; do
  (cd "$root" && pnpm --silent --filter="@larch/$app" deploy --prod "$lib/$app" >/dev/null)
  rm -f "$lib/$app/pnpm-lock.yaml" "$lib/$app/pnpm-workspace.yaml"
done
install -m 0755 "$node" "$lib/node"
install -m 0644 "$root/apps/agent/README.md" "$lib/README.md"
for pair in larch:cli larch-agent:agent; do
  name=${pair%%:*}
  app=${pair#*:}
  printf '#!/bin/sh\nexec /usr/lib/larch/node /usr/lib/larch/%s/dist/main.js "$@"\n' "$app" >"$dest/usr/bin/$name"
  chmod 0755 "$dest/usr/bin/$name"
done
units=$dest/usr/lib/systemd/system
install -m 0644 "$root"/apps/agent/systemd/larch-* "$units/"
mkdir -p "$units/multi-user.target.wants" "$units/timers.target.wants"
ln -sfn ../larch-finalize-staged.path "$units/multi-user.target.wants/larch-finalize-staged.path"
ln -sfn ../larch-agent.timer "$units/timers.target.wants/larch-agent.timer"
if [ "$mask" = 1 ]; then
  mkdir -p "$dest/usr/etc/systemd/system"
  ln -sfn /dev/null "$dest/usr/etc/systemd/system/ostree-finalize-staged.path"
  ln -sfn /dev/null "$dest/usr/etc/systemd/system/ostree-finalize-staged.service"
fi
