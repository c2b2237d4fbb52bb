#!/usr/bin/env bash
# A real network file system in a folder, for the test that the cache's locks hold between
# hosts (Debian's glusterfs-server and glusterfs-client: scripts/fetch-data.sh installs them):
#   scripts/gluster-local.sh start DIR   glusterd, a one-brick volume (DIR/brick) and two
#                                        clients of it: DIR/host1 and DIR/host2
#   scripts/gluster-local.sh stop DIR    unmounts and stops them
# The clients are two FUSE mounts, each its own glusterfs process with its own connection to
# the brick server; host2's runs in a network namespace of its own (scripts/lib/netns.sh), so
# it reaches the server over a veth link as a second machine would. The two mounts are
# separate file systems to this kernel (their own devices and inodes), so a flock taken on
# host1 can exclude one on host2 only through the server's lock manager, as between hosts.
# Needs root, /dev/fuse and iproute2. glusterd listens on its fixed port 24007: one at a time.
set -euo pipefail
cmd="${1:-}"; DIR="${2:-}"
[ -n "$cmd" ] && [ -n "$DIR" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
mkdir -p "$DIR"; DIR="$(cd "$DIR" && pwd)"
. "$(dirname "${BASH_SOURCE[0]}")/lib/netns.sh"
PATH="$PATH:/usr/sbin"
VOL=vfcache

kill_pidfile() {
  local f="$1" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

stop() {
  local m pid
  for m in host1 host2; do
    if mountpoint -q "$DIR/$m"; then umount "$DIR/$m" 2>/dev/null || umount -l "$DIR/$m" || true; fi
    kill_pidfile "$DIR/$m.pid"
  done
  if [ -f "$DIR/glusterd.pid" ]; then
    timeout 30 gluster --mode=script volume stop "$VOL" force >/dev/null 2>&1 || true
    timeout 30 gluster --mode=script volume delete "$VOL" >/dev/null 2>&1 || true
  fi
  # The brick server, should `volume stop` not have ended it.
  for pid in $(pgrep -f -- "--brick-name $DIR/brick" || true); do kill -9 "$pid" 2>/dev/null || true; done
  kill_pidfile "$DIR/glusterd.pid"
  netns_down "$DIR"
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
for t in glusterd gluster glusterfs; do
  command -v "$t" >/dev/null || {
    echo "gluster-local: $t missing: apt-get install glusterfs-server glusterfs-client (scripts/fetch-data.sh does)" >&2
    exit 1; }
done
[ -c /dev/fuse ] || { echo "gluster-local: /dev/fuse missing: the clients are FUSE mounts" >&2; exit 1; }
if pid="$(pgrep -x glusterd)"; then
  echo "gluster-local: a glusterd is already running (pid $pid; it holds port 24007): stop it first" >&2
  exit 1
fi
stop
mkdir -p "$DIR/glusterd" "$DIR/brick" "$DIR/host1" "$DIR/host2"
netns_up "$DIR" "g$(( RANDOM % 100000 ))" || exit 1
# The server listens on the veth's host side: gluster refuses loopback addresses for bricks.
SERVER="$NETNS_HOST_ADDR"
cat > "$DIR/glusterd.vol" <<VOLFILE
volume management
    type mgmt/glusterd
    option working-directory $DIR/glusterd
    option transport-type socket
    option transport.socket.listen-port 24007
    option ping-timeout 0
    option event-threads 1
end-volume
VOLFILE
glusterd -f "$DIR/glusterd.vol" -p "$DIR/glusterd.pid" -l "$DIR/glusterd.log" --log-level WARNING
ready=
for _ in $(seq 100); do
  timeout 10 gluster --mode=script volume list >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.2
done
[ -n "$ready" ] || { echo "gluster-local: glusterd did not answer (see $DIR/glusterd.log)" >&2; stop; exit 1; }
# `force`: a brick on the root file system is what a test has.
if ! out="$(timeout 60 gluster --mode=script volume create "$VOL" "$SERVER:$DIR/brick" force 2>&1 &&
            timeout 60 gluster --mode=script volume start "$VOL" 2>&1)"; then
  echo "gluster-local: could not create the volume: $out" >&2; stop; exit 1
fi
timeout 60 glusterfs --volfile-server="$SERVER" --volfile-id="$VOL" --pid-file="$DIR/host1.pid" \
  -l "$DIR/host1.log" "$DIR/host1"
timeout 60 nsenter --net="/run/netns/$NETNS_NS" glusterfs --volfile-server="$SERVER" \
  --volfile-id="$VOL" --pid-file="$DIR/host2.pid" -l "$DIR/host2.log" "$DIR/host2"
for m in host1 host2; do
  for _ in $(seq 100); do mountpoint -q "$DIR/$m" && break; sleep 0.1; done
  mountpoint -q "$DIR/$m" || { echo "gluster-local: $DIR/$m did not mount (see $DIR/$m.log)" >&2; stop; exit 1; }
done
echo "gluster-local: $DIR/host1 and $DIR/host2 are two clients of one volume (server $SERVER)"
