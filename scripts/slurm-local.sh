#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for `seqjax sweep --launcher slurm` and its tests.
#
#   bash scripts/slurm-local.sh start    # install slurm-wlm and munge if missing, write slurm.conf, start
#                                        # munged, slurmctld and slurmd; wait until the node is idle
#   bash scripts/slurm-local.sh status   # sinfo and squeue
#   bash scripts/slurm-local.sh stop     # stop the three daemons
#
# Runs as root (apt-get, /etc/slurm), without systemd: the daemons are started directly.  The node is
# this machine (`slurmd -C`: its CPUs and memory) in one partition, `debug`, with no time limit; no
# cgroups (a container may not have them) and no accounting database; a requeued job may start again
# after 10 s (AuthInfo=cred_expire, default 120 s).  `start` is idempotent.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
WAIT_S=60

say() { echo "slurm-local: $*"; }

install() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        say "installing slurm-wlm and munge"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
    fi
}

write_conf() {
    local host node
    host=$(hostname -s)
    # `slurmd -C`: "NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=.. RealMemory=.."
    node=$(slurmd -C | head -n 1)
    mkdir -p /etc/slurm "$STATE" "$SPOOL" "$LOGS"
    cat >"$CONF" <<EOF
# written by scripts/slurm-local.sh: one node, this machine
ClusterName=seqjax-local
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job (submitit requeues a preempted or timed-out task) waits this long before it may start again
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=${STATE}
SlurmdSpoolDir=${SPOOL}
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${LOGS}/slurmctld.log
SlurmdLogFile=${LOGS}/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
${node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
}

running() { pgrep -x "$1" >/dev/null; }

start_munge() {
    if running munged; then return; fi
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null; then mungekey --create --force; else create-munge-key -f; fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
}

node_state() { sinfo -h -N -o %T 2>/dev/null | head -n 1; }

start() {
    if [ "$(id -u)" != 0 ]; then
        echo "error: scripts/slurm-local.sh start must run as root (it installs packages and writes /etc/slurm)" >&2
        exit 2
    fi
    install
    if ! running slurmctld || ! running slurmd; then
        write_conf
    fi
    start_munge
    running slurmctld || slurmctld
    running slurmd || slurmd
    local waited=0 state=""
    while [ "$waited" -lt "$WAIT_S" ]; do
        state=$(node_state)
        case "$state" in
            idle|mixed|allocated) say "node $(hostname -s) is $state (partition debug)"; return 0 ;;
            down*|drain*) scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
        waited=$((waited + 1))
    done
    echo "error: the SLURM node is not idle after ${WAIT_S} s (state '${state}'): see ${LOGS}/slurmctld.log and ${LOGS}/slurmd.log" >&2
    exit 1
}

stop() {
    local name
    for name in slurmd slurmctld munged; do
        if running "$name"; then
            pkill -x "$name"
            while running "$name"; do sleep 0.2; done
            say "stopped $name"
        fi
    done
}

status() {
    for name in munged slurmctld slurmd; do
        if running "$name"; then say "$name running"; else say "$name not running"; fi
    done
    if running slurmctld; then
        sinfo
        squeue
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "error: usage: bash scripts/slurm-local.sh start|stop|status" >&2; exit 2 ;;
esac
