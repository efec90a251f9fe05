#!/usr/bin/env bash
# A single-node SLURM cluster on loopback, with accounting, to try the cluster path on one
# machine and to test it: munge, MariaDB, slurmdbd, slurmctld and slurmd, all on 127.0.0.1.
#
#   scripts/slurm_local.sh start      # installs what is missing, starts, prints SLURM_CONF
#   export SLURM_CONF=$PWD/.bplab/slurm/slurm.conf
#   bplab-train -m hydra/launcher=submitit_slurm hydra.launcher.partition=debug ...
#   scripts/slurm_local.sh stop       # cancels every job, stops every daemon it started
#   scripts/slurm_local.sh status
#
# Everything lives in one state folder (config, logs, spool, database, pid files): nothing is
# written to /etc and a SLURM already on the machine is left alone, as long as the ports differ.
# Only the commands that see SLURM_CONF talk to this cluster.
#
# Settings: BPLAB_SLURM_STATE (state folder, default .bplab/slurm), BPLAB_SLURM_PORT (first of
# four consecutive ports: slurmctld, slurmd, slurmdbd, MariaDB; default 6917), BPLAB_SLURM_CPUS
# (CPUs of the node, default nproc), BPLAB_SLURM_KILL_WAIT (seconds between SIGTERM and SIGKILL at
# a time limit, default 30, SLURM's own default). Runs as root: slurmd starts jobs as their users.
#
# Accounting (slurmdbd on MariaDB) is not optional here: without it `sacct` fails, submitit
# warns "Bypassing sacct error" on every poll and, worse, cannot tell that a job ended without
# writing its result (killed at a time limit, cancelled), so a multirun would wait forever.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${BPLAB_SLURM_STATE:-$ROOT/.bplab/slurm}"
PORT="${BPLAB_SLURM_PORT:-6917}"
CPUS="${BPLAB_SLURM_CPUS:-$(nproc)}"
KILL_WAIT="${BPLAB_SLURM_KILL_WAIT:-30}"
CLUSTER=bplab
NODE=bplab-node
PARTITION=debug
HOST="$(hostname -s)"
CONF="$STATE/slurm.conf"
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
# In the order they start.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

say() { echo "slurm-local: $*"; }
die() {  # die MESSAGE [STATUS]
  echo "slurm-local: error: $1" >&2
  exit "${2:-1}"
}

pid_of() { cat "$STATE/run/$1.pid" 2>/dev/null || true; }
# running PID: the process exists and is not a zombie waiting to be reaped.
running() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
  [ -n "$state" ] && [ "${state:0:1}" != Z ]
}
alive() {  # alive NAME: the daemon of that pid file runs
  local pid
  pid="$(pid_of "$1")"
  [ -n "$pid" ] && running "$pid"
}

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurm-wlm)
  command -v slurmdbd >/dev/null || missing+=(slurmdbd)
  command -v munged >/dev/null || missing+=(munge)
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    die "SLURM is not installed; as root: apt-get install -y ${PACKAGES[*]}" 2
  fi
  say "installing ${missing[*]} (Debian packages, about a minute)"
  # The packages would start their own system daemons (on the standard ports); this machine's
  # policy-rc.d may allow it, so forbid it for the install only.
  local policy=/usr/sbin/policy-rc.d had_policy=0
  [ -e "$policy" ] && had_policy=1
  if [ "$had_policy" = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}") >"$STATE/apt.log" 2>&1 || {
    [ "$had_policy" = 1 ] || rm -f "$policy"
    tail -n 5 "$STATE/apt.log" >&2
    die "apt-get install ${missing[*]} failed; see $STATE/apt.log"
  }
  [ "$had_policy" = 1 ] || rm -f "$policy"
}

write_configs() {
  mkdir -p "$STATE"/{run,log,spool/ctld,spool/d,munge,db}
  chmod 755 "$STATE/munge"
  # Cheap defaults for one machine: no cgroups (proctrack/linuxproc, task/none), CPUs shared by
  # jobs (cons_tres, CR_CPU), memory not tracked.
  cat >"$CONF" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire also delays a requeued job's restart (120 s by default): 10 s for a quick test.
AuthInfo=socket=$STATE/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=$KILL_WAIT
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 2))
# The MUNGE socket for talking to slurmdbd (SLURM reads it from here, not from AuthInfo).
AccountingStoragePass=$STATE/munge/munge.socket
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$CPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$STATE/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((PORT + 3))
StorageUser=slurm
StoragePass=bplab
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$STATE/slurmdbd.conf"
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
  local seconds="$1" what="$2" deadline=$((SECONDS + $1))
  shift 2
  while [ "$SECONDS" -lt "$deadline" ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "$what did not come up within ${seconds}s; logs in $STATE/log"
}

start_munge() {
  alive munged && return 0
  [ -s "$STATE/munge/munge.key" ] || {
    dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$STATE/munge/munge.key"
  }
  munged --force --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/munge/munged.seed" 2>>"$STATE/log/munged.log" ||
    die "munged did not start; see $STATE/log/munged.log"
}

mariadb_sql() { mariadb --no-defaults --socket="$STATE/db.sock" -uroot -e "$1"; }

start_mariadb() {
  alive mariadbd && return 0
  if [ ! -d "$STATE/db/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$STATE/db" --user=root --skip-test-db \
      --auth-root-authentication-method=socket >"$STATE/log/mariadb-install.log" 2>&1 ||
      die "mariadb-install-db failed; see $STATE/log/mariadb-install.log"
  fi
  mariadbd --no-defaults --datadir="$STATE/db" --user=root --socket="$STATE/db.sock" \
    --port=$((PORT + 3)) --bind-address=127.0.0.1 --skip-name-resolve \
    --pid-file="$STATE/run/mariadbd.pid" --log-error="$STATE/log/mariadb.log" \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=16M >/dev/null 2>&1 &
  wait_for 60 MariaDB mariadb_sql "select 1"
  mariadb_sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'bplab';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start() {
  mkdir -p "$STATE"
  install_packages
  [ "$(id -u)" = 0 ] || die "run as root: slurmd starts jobs as their users" 2
  export SLURM_CONF="$CONF"
  if alive slurmctld && alive slurmd; then
    say "already running (state in $STATE)"
  else
    # A start that fails half way stops what it started.
    trap 'stop >/dev/null 2>&1' EXIT
    write_configs
    start_munge
    start_mariadb
    alive slurmdbd || slurmdbd || die "slurmdbd did not start; see $STATE/log/slurmdbd.log"
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
    alive slurmctld || slurmctld || die "slurmctld did not start; see $STATE/log/slurmctld.log"
    wait_for 60 slurmctld scontrol ping
    alive slurmd || slurmd -N "$NODE" || die "slurmd did not start; see $STATE/log/slurmd.log"
    node_ready() { sinfo -h -n "$NODE" -o %T | grep -qE '^(idle|mixed|allocated)'; }
    wait_for 60 "the node $NODE" node_ready
    wait_for 60 accounting sacct -n -X -S now
    trap - EXIT
  fi
  say "up: cluster $CLUSTER, partition $PARTITION, one node with $CPUS CPUs, KillWait=${KILL_WAIT}s, accounting on"
  echo "Use it with:  export SLURM_CONF=$CONF"
}

# stop_daemons NAME...: SIGTERM to each by its pid file, then wait; SIGKILL after 15 s.
stop_daemons() {
  local name pid pids=()
  for name in "$@"; do
    pid="$(pid_of "$name")"
    if [ -n "$pid" ] && running "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + 15))
  for pid in "${pids[@]}"; do
    while running "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for name in "$@"; do rm -f "$STATE/run/$name.pid"; done
}

# slurmstepd (one per job step) detaches from slurmd: find this cluster's by the spool folder
# they hold open, so that a stop leaves no job process behind and touches no other SLURM.
our_stepds() {
  local exe pid
  for exe in /proc/[0-9]*/exe; do
    [ "$(readlink "$exe" 2>/dev/null)" = /usr/sbin/slurmstepd ] || continue
    pid="${exe#/proc/}"
    pid="${pid%/exe}"
    if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q -- "$STATE/"; then echo "$pid"; fi
  done
}

kill_tree() {  # kill_tree PID: SIGKILL to PID and every process below it
  local child
  kill -STOP "$1" 2>/dev/null || true
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
  kill -KILL "$1" 2>/dev/null || true
}

stop() {
  [ -f "$CONF" ] || {
    say "nothing to stop in $STATE"
    return 0
  }
  export SLURM_CONF="$CONF"
  if alive slurmctld; then
    local jobs
    jobs="$(squeue -h -o %A 2>/dev/null || true)"
    if [ -n "$jobs" ]; then
      say "cancelling jobs: $(echo $jobs)"
      scancel --full --signal=KILL $jobs >/dev/null 2>&1 || true
      scancel $jobs >/dev/null 2>&1 || true
      for _ in $(seq 1 40); do
        [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
        sleep 0.25
      done
    fi
  fi
  # SLURM's daemons first (slurmctld hands its last records to slurmdbd), then what they use.
  stop_daemons slurmd slurmctld slurmdbd
  stop_daemons mariadbd munged
  local stepd
  for stepd in $(our_stepds); do
    kill_tree "$stepd"
  done
  say "stopped (state kept in $STATE)"
}

status() {
  local name running=0
  for name in "${DAEMONS[@]}"; do
    if alive "$name"; then
      echo "$name: running (pid $(pid_of "$name"))"
      running=$((running + 1))
    else
      echo "$name: stopped"
    fi
  done
  [ "$running" -eq "${#DAEMONS[@]}" ]
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
