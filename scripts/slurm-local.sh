#!/usr/bin/env bash
# A real Slurm cluster in a folder, for tests and CI (Debian's slurm-wlm and munge:
# scripts/fetch-data.sh installs them):
#   scripts/slurm-local.sh start DIR [NODES]   munged, slurmctld and NODES slurmd (1 or 2),
#                                  configured in DIR; prints `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm-local.sh stop DIR            stops them (by their pid files)
# One node: `localhost`, with this machine's cores and memory. Two nodes: `n1` on this host
# and `n2` in a network namespace of its own (its own address on a veth pair, as a second
# machine on the network; needs root and `ip`), each with half the cores and memory; the
# file system is shared, as a cluster's shared file system would be. One partition `debug`
# (default); no cgroups (proctrack/linuxproc, task/none), no accounting. Daemons run in the
# foreground as background jobs of this script; their logs are DIR/*.log.
# SLURM_LOCAL_N2_MOUNT=SRC:DST (two nodes): n2 also gets a mount namespace of its own, where
# SRC is mounted on DST, so the two nodes reach one path through different clients of a
# network file system (scripts/gluster-local.sh's host2 on its host1).
set -euo pipefail
cmd="${1:-}"; DIR="${2:-}"; NODES="${3:-1}"
[ -n "$cmd" ] && [ -n "$DIR" ] || { echo "usage: $0 start|stop DIR [NODES]" >&2; exit 2; }
case "$NODES" in 1|2) ;; *) echo "slurm-local: NODES is 1 or 2, not $NODES" >&2; exit 2;; esac
mkdir -p "$DIR"; DIR="$(cd "$DIR" && pwd)"
. "$(dirname "${BASH_SOURCE[0]}")/lib/netns.sh"

stop() {
  for d in slurmd slurmd-n2 slurmctld munged; do
    if [ -f "$DIR/$d.pid" ]; then
      kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$(cat "$DIR/$d.pid")" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$(cat "$DIR/$d.pid")" 2>/dev/null || true
      rm -f "$DIR/$d.pid"
    fi
  done
  netns_down "$DIR"
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
for t in munged slurmctld slurmd sbatch; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || {
    echo "slurm-local: $t missing: apt-get install slurm-wlm munge (scripts/fetch-data.sh does)" >&2; exit 1; }
done
PATH="$PATH:/usr/sbin"
stop
mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool-localhost" "$DIR/spool-n1" "$DIR/spool-n2"
chmod 700 "$DIR/munge"
if [ ! -f "$DIR/munge/munge.key" ]; then
  head -c 1024 /dev/urandom > "$DIR/munge/munge.key"
  chmod 400 "$DIR/munge/munge.key"
fi
SOCKET="$DIR/munge/munge.socket"
munged --force --foreground --key-file="$DIR/munge/munge.key" --socket="$SOCKET" \
  --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/seed" \
  >/dev/null 2>&1 &
echo $! > "$DIR/munged.pid"
for _ in $(seq 50); do [ -S "$SOCKET" ] && break; sleep 0.1; done
[ -S "$SOCKET" ] || { echo "slurm-local: munged did not start (see $DIR/munged.log)" >&2; stop; exit 1; }

CPUS="$(nproc)"
MEM_MB="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))"
PORT_BASE="${SLURM_LOCAL_PORT:-$(( 20000 + RANDOM % 20000 ))}"
CTL=localhost
NODE_LINES="NodeName=localhost CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN"
NODE_LIST=localhost
if [ "$NODES" = 2 ]; then
  # n2 gets a network namespace and a veth pair: its own address, reached over the link.
  netns_up "$DIR" "$PORT_BASE" || { stop; exit 1; }
  CTL="localhost($NETNS_HOST_ADDR)"
  HALF_CPUS=$(( CPUS / 2 > 0 ? CPUS / 2 : 1 )); HALF_MEM=$(( MEM_MB / 2 ))
  NODE_LINES="NodeName=n1 NodeAddr=$NETNS_HOST_ADDR CPUs=$HALF_CPUS RealMemory=$HALF_MEM State=UNKNOWN
NodeName=n2 NodeAddr=$NETNS_PEER_ADDR CPUs=$HALF_CPUS RealMemory=$HALF_MEM State=UNKNOWN"
  NODE_LIST=n1,n2
fi
cat > "$DIR/slurm.conf" <<CONF
ClusterName=vistaflow-local
SlurmctldHost=$CTL
SlurmctldPort=$PORT_BASE
SlurmdPort=$((PORT_BASE + 1))
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
SlurmUser=$(id -un)
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool-%n
SlurmctldPidFile=$DIR/slurmctld.daemon.pid
SlurmdPidFile=$DIR/slurmd-%n.daemon.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
# Look at pending jobs (a gather waiting on its array) every 2 s, not every 60 s.
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
$NODE_LINES
PartitionName=debug Nodes=$NODE_LIST Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -D -i -f "$SLURM_CONF" >/dev/null 2>&1 &
echo $! > "$DIR/slurmctld.pid"
if [ "$NODES" = 2 ]; then
  slurmd -D -f "$SLURM_CONF" -N n1 >/dev/null 2>&1 &
  echo $! > "$DIR/slurmd.pid"
  if [ -n "${SLURM_LOCAL_N2_MOUNT:-}" ]; then
    # unshare and sh exec in turn: the pid recorded is slurmd's.
    nsenter --net="/run/netns/$NETNS_NS" unshare --mount --propagation private \
      sh -c 'mount --bind "$1" "$2" && exec slurmd -D -f "$3" -N n2' sh \
      "${SLURM_LOCAL_N2_MOUNT%%:*}" "${SLURM_LOCAL_N2_MOUNT#*:}" "$SLURM_CONF" >/dev/null 2>&1 &
  else
    nsenter --net="/run/netns/$NETNS_NS" slurmd -D -f "$SLURM_CONF" -N n2 >/dev/null 2>&1 &
  fi
  echo $! > "$DIR/slurmd-n2.pid"
else
  slurmd -D -f "$SLURM_CONF" -N localhost >/dev/null 2>&1 &
  echo $! > "$DIR/slurmd.pid"
fi
for _ in $(seq 150); do
  states="$(sinfo -h -N -o '%T' 2>/dev/null | sort -u | tr '\n' ' ' || true)"
  [ "$states" = "idle " ] && [ "$(sinfo -h -N -o '%N' 2>/dev/null | wc -l)" = "$NODES" ] && break
  sleep 0.2
done
if [ "$states" != "idle " ]; then
  echo "slurm-local: the nodes did not come up (states: ${states:-none}); logs in $DIR" >&2
  tail -n 5 "$DIR"/slurmctld.log "$DIR"/slurmd-*.log >&2 || true
  stop; exit 1
fi
echo "export SLURM_CONF=$SLURM_CONF"
