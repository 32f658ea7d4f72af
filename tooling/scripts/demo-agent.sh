#!/usr/bin/env bash
# One larch-agent cycle against a local larch-server, with real commands only:
#   publish v1 → provision a device sysroot (init-fs, os-init, pull, deploy, "boot" it)
#   → publish v2 (with a larch.rollout of 100% in the summary)
#   → `larch-agent run --once`: check, pull, pre-flight, stage, reboot (a script that boots the
#     default deployment by pointing the device's booted-root link at it)
#   → `larch-agent run --once` again (the agent after the reboot): health checks, confirm
#   → `larch-agent status` and `larch admin status`.
# Run from the repository root after `pnpm build`:  bash tooling/scripts/demo-agent.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$(realpath -m "${1:-demo-out/agent}")
LARCH="node $ROOT/apps/cli/dist/main.js"
AGENT="node $ROOT/apps/agent/dist/main.js"
SERVER="$ROOT/apps/server/dist/main.js"
for f in apps/cli/dist/main.js apps/agent/dist/main.js "$SERVER"; do
  [ -e "$f" ] || { echo "error: $f is missing; run \"pnpm build\" first" >&2; exit 1; }
done
# Deployments stay mutable so the demo directory can be removed again (as root, deploy would
# otherwise set the immutable bit on them, as OSTree does).
export OSTREE_SYSROOT_DEBUG=mutable-deployments

run() { echo "+ $*" >&2; "$@"; }

rm -rf "$OUT"
mkdir -p "$OUT"

make_tree() { # DIR VERSION
  mkdir -p "$1/usr/lib/modules/6.1.0" "$1/usr/etc" "$1/usr/bin"
  printf 'kernel %s\n' "$2" > "$1/usr/lib/modules/6.1.0/vmlinuz"
  printf 'initramfs %s\n' "$2" > "$1/usr/lib/modules/6.1.0/initramfs.img"
  printf 'PRETTY_NAME="Demo OS %s"\nVERSION_ID=%s\n' "$2" "$2" > "$1/usr/etc/os-release"
  printf '#!/bin/sh\necho demo\n' > "$1/usr/bin/demo" && chmod 755 "$1/usr/bin/demo"
}

echo "== publish v1" >&2
run $LARCH init --repo="$OUT/server-repo" --mode=archive
make_tree "$OUT/tree-1" 1
run $LARCH commit --repo="$OUT/server-repo" --branch=demo/os --subject="Demo OS 1" --add-metadata-string=version=1 "$OUT/tree-1"
run $LARCH summary --repo="$OUT/server-repo" -u

node "$SERVER" --repo="$OUT/server-repo" --port=0 > "$OUT/server.out" 2> "$OUT/server.err" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q 'Serving' "$OUT/server.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/.* at \(http[^ ]*\).*/\1/p' "$OUT/server.out" | head -n1)
[ -n "$URL" ] || { echo "error: larch-server did not start" >&2; cat "$OUT/server.err" >&2; exit 1; }
echo "== larch-server at $URL" >&2

echo "== provision the device" >&2
SYSROOT="$OUT/device/sysroot"
mkdir -p "$SYSROOT"
run $LARCH admin init-fs "$SYSROOT"
run $LARCH admin os-init --sysroot="$SYSROOT" demo
run $LARCH remote add --repo="$SYSROOT/ostree/repo" --no-gpg-verify origin "$URL"
run $LARCH pull --repo="$SYSROOT/ostree/repo" origin demo/os
run $LARCH admin deploy --sysroot="$SYSROOT" --os=demo origin:demo/os

# The device's "reboot": boot the default deployment (index 0) and start a new boot id.
cat > "$OUT/device/reboot.sh" <<EOF
#!/bin/sh
set -e
dir=\$($LARCH admin status --sysroot="$SYSROOT" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const d=JSON.parse(s).deployments[0];console.log(process.argv[1]+"/ostree/deploy/"+d.stateroot+"/deploy/"+d.name)})' "$SYSROOT")
ln -sfn "\$dir" "$OUT/device/booted"
cat /proc/sys/kernel/random/uuid > "$OUT/device/boot_id"
echo "reboot: booted \$(basename "\$dir")" >&2
EOF
chmod 755 "$OUT/device/reboot.sh"
sh "$OUT/device/reboot.sh"

mkdir -p "$OUT/device/health/required.d" "$OUT/device/health/wanted.d"
printf '#!/bin/sh\ntest -s "$LARCH_BOOTED_ROOT/etc/os-release"\n' > "$OUT/device/health/required.d/10-os-release"
printf '#!/bin/sh\n"$LARCH_BOOTED_ROOT/usr/bin/demo" >/dev/null\n' > "$OUT/device/health/wanted.d/20-demo-runs"
chmod 755 "$OUT/device/health/required.d/10-os-release" "$OUT/device/health/wanted.d/20-demo-runs"

cat > "$OUT/device/agent.toml" <<EOF
sysroot = "$SYSROOT"
stateroot = "demo"
ref = "demo/os"
stateDir = "$OUT/device/state"
deviceId = "demo-device-1"
bootedRoot = "$OUT/device/booted"
bootIdFile = "$OUT/device/boot_id"
rebootCommand = ["$OUT/device/reboot.sh"]

[remote]
name = "origin"
url = "$URL"
gpgVerify = false

[healthChecks]
dir = "$OUT/device/health"
checkTimeoutSeconds = 10
confirmTimeoutSeconds = 60
EOF

echo "== publish v2 (rollout 100%)" >&2
make_tree "$OUT/tree-2" 2
run $LARCH commit --repo="$OUT/server-repo" --branch=demo/os --subject="Demo OS 2" --add-metadata-string=version=2 "$OUT/tree-2"
run $LARCH summary --repo="$OUT/server-repo" -u -m "larch.rollout={'demo/os': <uint32 100>}"

echo "== agent cycle: check, pull, pre-flight, stage, reboot" >&2
run $AGENT run --once --config="$OUT/device/agent.toml"
echo "== agent after the reboot: health checks, confirm" >&2
run $AGENT run --once --config="$OUT/device/agent.toml"

echo "== status" >&2
run $AGENT status --config="$OUT/device/agent.toml"
run $LARCH admin status --sysroot="$SYSROOT" --booted-root="$OUT/device/booted"
phase=$($AGENT status --json --config="$OUT/device/agent.toml" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);const b=j.sysroot.deployments.find(d=>d.booted);console.log(j.state.phase+" "+j.state.counters.updates+" "+(b&&b.version))})')
[ "$phase" = "idle 1 2" ] || { echo "error: expected the device idle on version 2 after one update, got: $phase" >&2; exit 1; }
echo "== done: the device runs version 2, version 1 is its rollback" >&2
