#!/usr/bin/env bash
# The README's sweep as a SLURM array job on a one-node cluster on this machine, with one
# task cancelled mid-run (scancel) and requeued (scontrol requeue); then `odeflow merge` must
# find every run, and every run's model and table row must be bit-identical to a local
# (non-SLURM) sweep of the same plan.
#
# Needs root and apt (it installs Debian's slurm-wlm and munge), and the ports 6817/6818 on
# localhost. When it cannot run it says exactly why on stderr and exits with code 77, which
# .ci/run reports as "skipped". Any other non-zero code is a failure. Run by hand:
# `.ci/slurm.sh` (from anywhere; builds the odeflow binary with cargo first).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -d "$HOME/.cargo/bin" ]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi

SKIP=77
skip() {
  echo ".ci/slurm.sh: skipped: $*" >&2
  exit "$SKIP"
}
say() { echo "==> slurm: $*" >&2; }
START=$(date +%s)

[ "$(id -u)" = 0 ] || skip "needs root to install slurm-wlm and munge and to start slurmctld/slurmd (running as uid $(id -u))"
command -v apt-get >/dev/null 2>&1 || skip "apt-get is not available (not a Debian-like system)"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  say "installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends slurm-wlm munge >/tmp/odeflow-slurm-apt.log 2>&1; then
    apt-get update -q >>/tmp/odeflow-slurm-apt.log 2>&1 || skip "apt-get update failed (no network or no package mirror?); see /tmp/odeflow-slurm-apt.log"
    apt-get install -y -q --no-install-recommends slurm-wlm munge >>/tmp/odeflow-slurm-apt.log 2>&1 \
      || skip "apt-get install slurm-wlm munge failed; see /tmp/odeflow-slurm-apt.log"
  fi
fi
for port in 6817 6818; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    skip "port $port on localhost is in use (another slurmctld/slurmd is running?)"
  fi
done

say "building odeflow"
cargo build -q --profile test -p odeflow-cli  # the profile of cargo test: nothing new to compile after it
BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/odeflow"
[ -x "$BIN" ] || { echo ".ci/slurm.sh: no binary at $BIN" >&2; exit 1; }

W=$(mktemp -d /tmp/odeflow-slurm.XXXXXX)
chmod 755 "$W"  # munged (user munge) must reach its key and socket below
HOST=$(hostname -s)
NCPU=$(nproc)
MUNGE_PID=""

cleanup() {
  local rc=$?
  [ -f "$W/slurmd.pid" ] && kill "$(cat "$W/slurmd.pid")" 2>/dev/null || true
  [ -f "$W/slurmctld.pid" ] && kill "$(cat "$W/slurmctld.pid")" 2>/dev/null || true
  [ -n "$MUNGE_PID" ] && kill "$MUNGE_PID" 2>/dev/null || true
  sleep 1
  if [ "$rc" != 0 ] && [ "$rc" != "$SKIP" ]; then
    echo ".ci/slurm.sh: failed (code $rc); logs kept in $W" >&2
    tail -n 20 "$W"/slurmctld.log "$W"/slurmd.log 2>/dev/null >&2 || true
  else
    rm -rf "$W"
  fi
}
trap cleanup EXIT

say "munge: a fresh key in $W, munged on a private socket"
mkdir -p "$W/munge"
dd if=/dev/urandom of="$W/munge/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$W/munge" 2>/dev/null || skip "there is no 'munge' user (the munge package did not install it)"
chmod 711 "$W/munge"  # munged wants execute permission for all on its socket folder
chmod 400 "$W/munge/munge.key"
SOCK="$W/munge/munge.socket"
runuser -u munge -- munged --key-file="$W/munge/munge.key" --socket="$SOCK" \
  --pid-file="$W/munge/munged.pid" --log-file="$W/munge/munged.log" --seed-file="$W/munge/munged.seed" \
  || skip "munged does not start here (see $W/munge/munged.log)"
MUNGE_PID=$(cat "$W/munge/munged.pid")

say "slurm: one node ($HOST, $NCPU CPUs) on localhost"
mkdir -p "$W/state" "$W/spool"
cat >"$W/slurm.conf" <<EOF
ClusterName=odeflow-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$W/slurm.conf"
slurmctld -f "$SLURM_CONF" || skip "slurmctld does not start here (see $W/slurmctld.log)"
slurmd -f "$SLURM_CONF" || skip "slurmd does not start here (see $W/slurmd.log)"
for _ in $(seq 60); do
  state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
  case "$state" in idle*|mix*|alloc*) break ;; esac
  sleep 1
done
case "${state:-}" in idle*|mix*|alloc*) ;; *) skip "the node did not come up (state '${state:-none}'; see $W/slurmd.log)" ;; esac

# The README's array job on a tiny plan: 2 methods × 4 step counts × 2 seeds = 16 runs in
# 4 shards. One worker per run (--threads 1), so the local sweep computes bit for bit the same.
PLAN="--dataset sphere2 --methods euler,midpoint --steps 1,2,4,8 --seeds 0,1 \
  --iterations 1500 --train-size 256 --test-size 256 --batch-size 64 --lr 1e-2 \
  --checkpoint-every 50 --threads 1 -q"
SHARDS=4
cat >"$W/sweep.sbatch" <<EOF
#!/bin/sh
#SBATCH --array=1-$SHARDS
#SBATCH --cpus-per-task=1
#SBATCH --output=$W/task-%a.out
"$BIN" sweep --out-dir "$W/slurm-sweep" $PLAN --shard \${SLURM_ARRAY_TASK_ID}/$SHARDS
EOF
JOB=$(sbatch --parsable --chdir="$W" "$W/sweep.sbatch")
say "submitted array job $JOB (tasks 1-$SHARDS)"

# Cancel task 2 once it has checkpointed at least one run, then requeue it.
VICTIM="${JOB}_2"
for _ in $(seq 600); do
  if [ "$(squeue -h -j "$VICTIM" -o %T 2>/dev/null)" = RUNNING ] \
    && ls "$W"/slurm-sweep/runs/*/checkpoint.safetensors >/dev/null 2>&1; then
    break
  fi
  sleep 0.2
done
[ "$(squeue -h -j "$VICTIM" -o %T 2>/dev/null)" = RUNNING ] || { echo ".ci/slurm.sh: task $VICTIM never ran" >&2; exit 1; }
say "scancel $VICTIM mid-run"
scancel "$VICTIM"
for _ in $(seq 100); do
  [ -z "$(squeue -h -j "$VICTIM" -o %T 2>/dev/null)" ] && break
  sleep 0.2
done
say "scontrol requeue $VICTIM"
scontrol requeue "$VICTIM"
# A requeued job is held back for a while (its begin time moves ahead); make it eligible now.
scontrol update JobId="$VICTIM" StartTime=now >/dev/null 2>&1 || true

for _ in $(seq 1800); do
  [ -z "$(squeue -h -j "$JOB" 2>/dev/null)" ] && break
  sleep 1
done
[ -z "$(squeue -h -j "$JOB" 2>/dev/null)" ] || { echo ".ci/slurm.sh: job $JOB did not finish in 30 minutes" >&2; exit 1; }
for k in $(seq "$SHARDS"); do
  [ -f "$W/slurm-sweep/shards/shard-$k-of-$SHARDS.json" ] \
    || { echo ".ci/slurm.sh: shard $k/$SHARDS wrote no shard file; its log:" >&2; cat "$W/task-$k.out" >&2; exit 1; }
done

say "odeflow merge"
"$BIN" merge "$W/slurm-sweep" -q --json >"$W/merged.json"
say "the same plan locally, without SLURM"
"$BIN" sweep --out-dir "$W/local-sweep" $PLAN --json >"$W/local.json"

# Every run, bit for bit: the same model files and the same table (wall-clock seconds aside).
runs=$(ls "$W/local-sweep/runs")
[ "$(echo "$runs" | wc -l)" = 16 ] || { echo ".ci/slurm.sh: the local sweep has $(echo "$runs" | wc -l) runs, not 16" >&2; exit 1; }
for r in $runs; do
  cmp -s "$W/local-sweep/runs/$r/model.json" "$W/slurm-sweep/runs/$r/model.json" \
    || { echo ".ci/slurm.sh: run $r differs between SLURM and the local sweep" >&2; exit 1; }
done
strip() { cut -d, -f1-15 "$1"; }
diff <(strip "$W/local-sweep/sweep.csv") <(strip "$W/slurm-sweep/sweep.csv") >&2 \
  || { echo ".ci/slurm.sh: sweep.csv differs between SLURM and the local sweep" >&2; exit 1; }
echo ".ci/slurm.sh: 16 runs in $SHARDS array tasks (task 2 cancelled and requeued) merged and bit-identical to the local sweep, in $(( $(date +%s) - START )) s" >&2
