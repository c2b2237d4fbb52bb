#!/usr/bin/env bash
# A real single-node Slurm cluster in a folder, for tests and CI (Debian's slurm-wlm and
# munge: scripts/fetch-data.sh installs them):
#   scripts/slurm-local.sh start DIR    munged, slurmctld and slurmd on localhost, configured
#                                       in DIR; prints `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm-local.sh stop DIR     stops them (by their pid files)
# The node has this machine's cores and memory, one partition `debug` (default); no cgroups
# (proctrack/linuxproc, task/none), no accounting. Daemons run in the foreground as
# background jobs of this script; their logs are DIR/*.log.
set -euo pipefail
cmd="${1:-}"; DIR="${2:-}"
[ -n "$cmd" ] && [ -n "$DIR" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
mkdir -p "$DIR"; DIR="$(cd "$DIR" && pwd)"

stop() {
  for d in slurmd slurmctld munged; do
    if [ -f "$DIR/$d.pid" ]; then
      kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$(cat "$DIR/$d.pid")" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$(cat "$DIR/$d.pid")" 2>/dev/null || true
      rm -f "$DIR/$d.pid"
    fi
  done
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
for t in munged slurmctld slurmd sbatch; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || {
    echo "slurm-local: $t missing: apt-get install slurm-wlm munge (scripts/fetch-data.sh does)" >&2; exit 1; }
done
PATH="$PATH:/usr/sbin"
stop
mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool"
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
cat > "$DIR/slurm.conf" <<CONF
ClusterName=vistaflow-local
SlurmctldHost=localhost
SlurmctldPort=$PORT_BASE
SlurmdPort=$((PORT_BASE + 1))
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
SlurmUser=$(id -un)
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.daemon.pid
SlurmdPidFile=$DIR/slurmd.daemon.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
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
NodeName=localhost CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -D -i -f "$SLURM_CONF" >/dev/null 2>&1 &
echo $! > "$DIR/slurmctld.pid"
slurmd -D -f "$SLURM_CONF" -N localhost >/dev/null 2>&1 &
echo $! > "$DIR/slurmd.pid"
for _ in $(seq 150); do
  state="$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)"
  [ "$state" = idle ] && break
  sleep 0.2
done
if [ "$state" != idle ]; then
  echo "slurm-local: the node did not come up (state: ${state:-none}); logs in $DIR" >&2
  tail -5 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
  stop; exit 1
fi
echo "export SLURM_CONF=$SLURM_CONF"
