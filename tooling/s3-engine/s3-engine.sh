#!/usr/bin/env bash
# A single-node Ceph cluster with radosgw (the S3 API) on 127.0.0.1, for tests and benchmarks.
#
#   s3-engine.sh start   install the Debian packages if missing, create the cluster in $S3E_DIR on
#                        first use (or restart it), wait until S3 answers, print the exports
#   s3-engine.sh env     print the exports (S3_ENDPOINT, AWS_*, CEPH_CONF) of a running cluster
#   s3-engine.sh stop    stop the daemons by their pid files (SIGTERM, then SIGKILL after 30 s)
#   s3-engine.sh status  exit 0 when S3 answers
#
# Every command is idempotent. Settings (environment):
#   S3E_DIR   scratch directory (default /tmp/larch-s3e)      S3E_PORT     S3 port (default 7480)
#   S3E_MON_PORT  mon port (default 3300)                      S3E_OSD_PORTS  messenger range (6800-6899)
#   S3E_MGR   1 to also run a ceph-mgr (default 0: saves ~300 MB; S3 works the same without it)
#   S3E_OSD_SIZE  sparse block file size in bytes (default 10 GiB)
# Only loopback addresses are used; nothing outside $S3E_DIR is written (except the packages).
set -euo pipefail

S3E_DIR="${S3E_DIR:-/tmp/larch-s3e}"
S3E_PORT="${S3E_PORT:-7480}"
S3E_MON_PORT="${S3E_MON_PORT:-3300}"
S3E_OSD_PORTS="${S3E_OSD_PORTS:-6800-6899}"
S3E_MGR="${S3E_MGR:-0}"
S3E_OSD_SIZE="${S3E_OSD_SIZE:-10737418240}"
ACCESS_KEY="${S3E_ACCESS_KEY:-LARCHTESTACCESSKEY01}"
SECRET_KEY="${S3E_SECRET_KEY:-larchTestSecretKey0123456789abcdefghijklm}"
CONF="$S3E_DIR/ceph.conf"
PACKAGES=(ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime curl)

log() { echo "s3-engine: $*" >&2; }
die() { echo "s3-engine: error: $*" >&2; exit 1; }

ensure_packages() {
  local missing=()
  command -v ceph-mon >/dev/null || missing+=(ceph-mon)
  command -v ceph-osd >/dev/null || missing+=(ceph-osd)
  command -v radosgw >/dev/null || missing+=(radosgw)
  command -v ceph >/dev/null || missing+=(ceph-common)
  command -v uuidgen >/dev/null || missing+=(uuid-runtime)
  command -v curl >/dev/null || missing+=(curl)
  if [ "$S3E_MGR" = 1 ] && ! command -v ceph-mgr >/dev/null; then missing+=(ceph-mgr); fi
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); install them as root: apt-get install -y --no-install-recommends ${PACKAGES[*]}"
  log "installing ${PACKAGES[*]} (about 1-1.5 min)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends --no-upgrade "${PACKAGES[@]}" >"$S3E_DIR/apt.log" 2>&1 || {
    apt-get update -qq >>"$S3E_DIR/apt.log" 2>&1
    apt-get install -y -qq --no-install-recommends --no-upgrade "${PACKAGES[@]}" >>"$S3E_DIR/apt.log" 2>&1 || die "apt-get install failed, see $S3E_DIR/apt.log"
  }
}

print_env() {
  cat <<EOT
export S3_ENDPOINT=http://127.0.0.1:$S3E_PORT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export CEPH_CONF=$CONF
EOT
}

s3_up() { curl -s -m 2 "http://127.0.0.1:$S3E_PORT/" 2>/dev/null | grep -q ListAllMyBucketsResult; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_conf() {
  cat >"$CONF" <<EOT
[global]
fsid = $(cat "$S3E_DIR/fsid")
mon_host = v2:127.0.0.1:$S3E_MON_PORT
public_network = 127.0.0.1/32
ms_bind_msgr1 = false
ms_bind_msgr2 = true
ms_bind_port_min = ${S3E_OSD_PORTS%-*}
ms_bind_port_max = ${S3E_OSD_PORTS#*-}
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
keyring = $S3E_DIR/keyring
run_dir = $S3E_DIR/run
admin_socket = $S3E_DIR/run/\$cluster-\$name.asok
pid_file = $S3E_DIR/run/\$name.pid
log_file = $S3E_DIR/log/\$cluster-\$name.log
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_max_pg_per_osd = 1000

[mon]
mon_data = $S3E_DIR/mon/\$cluster-\$id
keyring = \$mon_data/keyring

[mgr]
mgr_data = $S3E_DIR/mgr/\$cluster-\$id
keyring = \$mgr_data/keyring

[osd]
osd_data = $S3E_DIR/osd/\$cluster-\$id
keyring = \$osd_data/keyring
osd_objectstore = bluestore
bluestore_block_size = $S3E_OSD_SIZE
bluestore_block_create = true
osd_memory_target = 536870912

[client.rgw.a]
keyring = $S3E_DIR/rgw.keyring
rgw_frontends = beast endpoint=127.0.0.1:$S3E_PORT tcp_nodelay=1
rgw_dns_name = localhost
rgw_data = $S3E_DIR/rgw
log_file = $S3E_DIR/log/\$cluster-\$name.log
rgw_enable_usage_log = false
EOT
}

ceph_() { timeout 60 ceph --conf "$CONF" "$@" 9>&-; }

# Start a daemon without our lock descriptor and with its output in the log directory: a daemon
# that kept fd 9 would hold the start lock for its whole life.
daemon() { "$@" </dev/null >>"$S3E_DIR/log/daemons.out" 2>&1 9>&-; }

wait_for() { # SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "timed out waiting for $what (logs: $S3E_DIR/log)"
    sleep 0.5
  done
}

osd_up() { ceph_ osd dump 2>/dev/null | grep -q '^osd.0 up'; }
pgs_clean() {
  local s; s=$(ceph_ pg stat 2>/dev/null) || return 1
  echo "$s" | grep -q 'active+clean' && ! echo "$s" | grep -qE 'peering|creating|unknown|activating'
}

create_cluster() {
  log "creating a new cluster in $S3E_DIR"
  cmd_stop 2>/dev/null
  rm -rf "$S3E_DIR/mon" "$S3E_DIR/osd" "$S3E_DIR/mgr" "$S3E_DIR/rgw" "$S3E_DIR/run" "$S3E_DIR/log" "$S3E_DIR"/*.keyring "$S3E_DIR/keyring" "$S3E_DIR/created"
  mkdir -p "$S3E_DIR"/{mon,osd/ceph-0,mgr/ceph-x,rgw,run,log}
  uuidgen >"$S3E_DIR/fsid"
  write_conf
  ceph-authtool --create-keyring "$S3E_DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$S3E_DIR/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$S3E_DIR/mon.keyring" --import-keyring "$S3E_DIR/keyring" >/dev/null
  monmaptool --create --fsid "$(cat "$S3E_DIR/fsid")" --addv a "[v2:127.0.0.1:$S3E_MON_PORT]" "$S3E_DIR/monmap" >/dev/null
  ceph-mon --conf "$CONF" --mkfs -i a --monmap "$S3E_DIR/monmap" --keyring "$S3E_DIR/mon.keyring"
  daemon ceph-mon --conf "$CONF" -i a
  wait_for 60 "the monitor" ceph_ -s
  ceph_ config set mon auth_allow_insecure_global_id_reclaim false >/dev/null 2>&1 || true

  if [ "$S3E_MGR" = 1 ]; then
    ceph_ auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' >"$S3E_DIR/mgr/ceph-x/keyring"
    daemon ceph-mgr --conf "$CONF" -i x
  fi

  local uuid secret
  uuid=$(uuidgen)
  secret=$(ceph-authtool --gen-print-key)
  echo "{\"cephx_secret\": \"$secret\"}" >"$S3E_DIR/osd-secret.json"
  ceph_ osd new "$uuid" -i "$S3E_DIR/osd-secret.json" >/dev/null
  rm -f "$S3E_DIR/osd-secret.json"
  ceph-osd --conf "$CONF" -i 0 --mkfs --key "$secret" --osd-uuid "$uuid" >"$S3E_DIR/log/osd-mkfs.log" 2>&1 \
    || die "ceph-osd --mkfs failed, see $S3E_DIR/log/osd-mkfs.log"
  printf '[osd.0]\n\tkey = %s\n' "$secret" >"$S3E_DIR/osd/ceph-0/keyring"
  daemon ceph-osd --conf "$CONF" -i 0
  wait_for 90 "osd.0 up" osd_up

  local pool
  for pool in .rgw.root default.rgw.control default.rgw.meta default.rgw.log \
              default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
    ceph_ osd pool create "$pool" 8 8 >/dev/null 2>&1
    ceph_ osd pool set "$pool" size 1 --yes-i-really-mean-it >/dev/null 2>&1 || true
    ceph_ osd pool application enable "$pool" rgw >/dev/null 2>&1
  done
  ceph_ auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' >"$S3E_DIR/rgw.keyring"
  start_rgw
  radosgw-admin --conf "$CONF" 9>&- user create --uid tester --display-name "larch tests" \
    --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" >/dev/null
  touch "$S3E_DIR/created"
}

start_rgw() {
  alive "$S3E_DIR/run/client.rgw.a.pid" || daemon radosgw --conf "$CONF" -n client.rgw.a
  wait_for 90 "radosgw on 127.0.0.1:$S3E_PORT" s3_up
}

restart_cluster() {
  log "restarting the cluster in $S3E_DIR"
  alive "$S3E_DIR/run/mon.a.pid" || daemon ceph-mon --conf "$CONF" -i a
  wait_for 60 "the monitor" ceph_ -s
  if [ "$S3E_MGR" = 1 ]; then alive "$S3E_DIR/run/mgr.x.pid" || daemon ceph-mgr --conf "$CONF" -i x; fi
  alive "$S3E_DIR/run/osd.0.pid" || daemon ceph-osd --conf "$CONF" -i 0
  wait_for 90 "osd.0 up" osd_up
  start_rgw
}

cmd_start() {
  mkdir -p "$S3E_DIR"
  exec 9>"$S3E_DIR/.lock"
  flock -w 900 9 || die "another start holds $S3E_DIR/.lock"
  if s3_up && [ -f "$S3E_DIR/created" ]; then print_env; return 0; fi
  ensure_packages
  if [ -f "$S3E_DIR/created" ]; then restart_cluster; else create_cluster; fi
  if [ "$S3E_MGR" = 1 ]; then wait_for 90 "all placement groups active+clean" pgs_clean; fi
  print_env
}

stop_pid() { # PIDFILE
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  echo "$pid"
}

cmd_stop() {
  [ -d "$S3E_DIR/run" ] || return 0
  local pids=() p f
  for f in client.rgw.a mgr.x osd.0 mon.a; do
    p=$(stop_pid "$S3E_DIR/run/$f.pid") || true
    [ -n "$p" ] && pids+=("$p")
  done
  local end=$((SECONDS + 30))
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null; do
      if [ $SECONDS -ge $end ]; then kill -KILL "$p" 2>/dev/null || true; break; fi
      sleep 0.2
    done
  done
  rm -f "$S3E_DIR"/run/*.pid
  log "stopped"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) print_env ;;
  status) s3_up ;;
  *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
