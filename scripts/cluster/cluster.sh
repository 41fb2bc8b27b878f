#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for the cluster test suite and the
# failover measurements: rabbit-c1@localhost .. rabbit-c3@localhost, AMQP on
# 127.0.0.1:5681-5683, Erlang distribution on 25681-25683.
#
# It never touches the broker on 5672 (rabbit@localhost): every rabbitmqctl call names one
# of its own nodes with -n (ctl refuses any other), each node has its own data, log,
# config, plugins and pid files under $CLUSTER_BASE, and nothing here stops epmd.
#
# Usage: scripts/cluster/cluster.sh COMMAND [N]
#   start         start and join the three nodes; waits until all three run clustered.
#                 Idempotent: a healthy cluster is left as it is, a node that is down or
#                 stopped is brought back, and a cluster that cannot be repaired is rebuilt.
#   stop          stop the three nodes and delete their data (the suite's teardown)
#   status        exit 0 when all three nodes run clustered, else 1
#   stop-app N    rabbitmqctl stop_app on node N (1-3): the node's Erlang VM stays up
#   start-app N   rabbitmqctl start_app on node N, then wait for its AMQP port
#   kill N        SIGKILL node N's own beam process, found by its pid file (never by name)
#   boot N        start node N's VM again with its data (after kill), wait for AMQP
#   pid N         print node N's beam pid
#   ctl N ARGS    rabbitmqctl -n rabbit-cN@localhost ARGS
#
# Environment: CLUSTER_BASE (default /tmp/celery-amqp-cluster) holds the nodes' files.
# Must run as root or as the rabbitmq user: the nodes run as rabbitmq, with its home (and
# so its Erlang cookie, the one the 5672 node uses) so that rabbitmqctl can reach them.
set -euo pipefail

BASE=${CLUSTER_BASE:-/tmp/celery-amqp-cluster}
NODES=(1 2 3)
RMQ_BIN=${RABBITMQ_SCRIPTS_DIR:-/usr/lib/rabbitmq/bin}
RMQ_USER=rabbitmq
RMQ_HOME=$(getent passwd "$RMQ_USER" | cut -d: -f6 || true)
# Bounds, in seconds, on how long one node may take to boot or one rabbitmqctl call may run.
BOOT_WAIT=${CLUSTER_BOOT_WAIT:-120}
CTL_TIMEOUT=${CLUSTER_CTL_TIMEOUT:-120}

log() { printf '[cluster] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

node_name() { printf 'rabbit-c%s@localhost' "$1"; }
amqp_port() { printf '%s' $((5680 + $1)); }
dist_port() { printf '%s' $((25680 + $1)); }
node_dir() { printf '%s/c%s' "$BASE" "$1"; }

check_node_arg() {
  case "${1:-}" in
    1 | 2 | 3) ;;
    *) die "node must be 1, 2 or 3, got '${1:-}'" ;;
  esac
}

preflight() {
  [[ -x "$RMQ_BIN/rabbitmq-server" && -x "$RMQ_BIN/rabbitmqctl" ]] ||
    die "RabbitMQ is not installed ($RMQ_BIN/rabbitmq-server missing); apt-get install rabbitmq-server"
  [[ -n "$RMQ_HOME" ]] || die "no '$RMQ_USER' user"
  local me
  me=$(id -un)
  [[ "$me" == root || "$me" == "$RMQ_USER" ]] || die "run as root or $RMQ_USER (the nodes run as $RMQ_USER)"
}

# Runs a command as the rabbitmq user with a clean environment: only what is set here, so
# a RABBITMQ_NODENAME or RABBITMQ_NODE_PORT in the caller's environment cannot leak into a
# node (it would make the node collide with the 5672 one).
as_rabbitmq() {
  local envs=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$RMQ_HOME" LANG=C.UTF-8 LC_ALL=C.UTF-8)
  if [[ $(id -un) == root ]]; then
    runuser -u "$RMQ_USER" -- env -i "${envs[@]}" "$@"
  else
    env -i "${envs[@]}" "$@"
  fi
}

# rabbitmqctl against one of our nodes, never another: -n is always one of ours.
ctl() {
  local n=$1
  shift
  check_node_arg "$n"
  as_rabbitmq timeout "$CTL_TIMEOUT" "$RMQ_BIN/rabbitmqctl" -q -n "$(node_name "$n")" "$@"
}

# True when node N's Erlang VM is registered with epmd (fast: no rabbitmqctl).
vm_up() {
  epmd -names 2>/dev/null | grep -q "^name rabbit-c$1 at port "
}

# True when node N accepts AMQP connections, i.e. its rabbit app runs.
amqp_up() {
  (exec 3<>"/dev/tcp/127.0.0.1/$(amqp_port "$1")") 2>/dev/null
}

# The beam pid of node N from its pid file, checked against /proc so that a stale file
# can never make us signal an unrelated process.
node_pid() {
  local pidfile pid
  pidfile="$(node_dir "$1")/node.pid"
  [[ -s "$pidfile" ]] || return 1
  pid=$(tr -dc '0-9' <"$pidfile")
  [[ -n "$pid" && -r "/proc/$pid/environ" ]] || return 1
  # 3.10 names the node at run time, not on the command line: its environment says which it is.
  tr '\0' '\n' <"/proc/$pid/environ" | grep -qx "RABBITMQ_NODENAME=rabbit-c$1@localhost" || return 1
  [[ "$(readlink "/proc/$pid/exe")" == */beam.smp ]] || return 1
  printf '%s\n' "$pid"
}

write_files() {
  local n=$1 dir
  dir=$(node_dir "$n")
  mkdir -p "$dir/mnesia" "$dir/log"
  # The system-wide rabbitmq.conf pins the listener to 5672: each node needs its own file.
  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$(amqp_port "$n")
# Modest limits: three extra nodes share two cores and the machine with other work.
vm_memory_high_watermark.absolute = 1GB
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
EOF
  printf '[].\n' >"$dir/enabled_plugins"
  # An env file of our own, so that /etc/rabbitmq/rabbitmq-env.conf (NODENAME=rabbit@localhost)
  # is never read for these nodes; it keeps the same epmd address and distribution interface.
  cat >"$dir/rabbitmq-env.conf" <<EOF
NODENAME=$(node_name "$n")
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$(amqp_port "$n")
DIST_PORT=$(dist_port "$n")
ERL_EPMD_ADDRESS=127.0.0.1
EOF
  chown -R "$RMQ_USER:$RMQ_USER" "$dir"
}

# Starts node N's VM detached with its own files; the data dir is kept (a restarted node
# rejoins its cluster from it).
boot_vm() {
  local n=$1 dir
  dir=$(node_dir "$n")
  write_files "$n"
  log "booting $(node_name "$n") (AMQP $(amqp_port "$n"), dist $(dist_port "$n"))"
  (cd "$dir" && as_rabbitmq \
    RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    RABBITMQ_NODENAME="$(node_name "$n")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(amqp_port "$n")" \
    RABBITMQ_DIST_PORT="$(dist_port "$n")" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_PID_FILE="$dir/node.pid" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    "$RMQ_BIN/rabbitmq-server" -detached) >>"$dir/log/boot.out" 2>&1 9>&-
}

wait_until() {
  local what=$1 limit=$2
  shift 2
  local end=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < end)) || {
      log "timed out after ${limit}s waiting for $what"
      return 1
    }
    sleep 0.2
  done
}

wait_amqp() {
  wait_until "$(node_name "$1") to accept AMQP on $(amqp_port "$1")" "$BOOT_WAIT" amqp_up "$1"
}

# The running nodes of the cluster as node N sees them, one per line.
running_nodes() {
  ctl "$1" eval 'lists:foreach(fun(N) -> io:format("~s~n", [N]) end, lists:sort(rabbit_nodes:all_running())).' |
    grep '^rabbit-c' || true
}

clustered() {
  local want got
  want=$(printf '%s\n' rabbit-c1@localhost rabbit-c2@localhost rabbit-c3@localhost)
  got=$(running_nodes 1 2>/dev/null) || return 1
  [[ "$got" == "$want" ]]
}

healthy() {
  local n
  for n in "${NODES[@]}"; do amqp_up "$n" || return 1; done
  clustered
}

join() {
  local n=$1
  local out
  out="$(node_dir "$n")/log/join.out"
  log "joining $(node_name "$n") to rabbit-c1@localhost"
  # rabbitmqctl's join output is noisy (feature-flag warnings): kept in a file, shown on failure.
  if ! { ctl "$n" stop_app && ctl "$n" reset && ctl "$n" join_cluster rabbit-c1@localhost &&
    ctl "$n" start_app; } >"$out" 2>&1; then
    cat "$out" >&2
    return 1
  fi
}

# One node's member list, from its own point of view.
members_of() {
  ctl "$1" eval 'lists:foreach(fun(N) -> io:format("~s~n", [N]) end, lists:sort(rabbit_nodes:all())).' |
    grep '^rabbit-c' || true
}

try_start() {
  local n
  # Cookie: the nodes run as rabbitmq with its home, so they share the 5672 node's cookie
  # (created by whichever node boots first on a fresh machine).
  for n in "${NODES[@]}"; do
    if ! vm_up "$n"; then
      boot_vm "$n"
    fi
  done
  for n in "${NODES[@]}"; do
    wait_until "$(node_name "$n") to register with epmd" "$BOOT_WAIT" vm_up "$n" || return 1
  done
  for n in "${NODES[@]}"; do
    # A VM up with its app stopped (a test's stop_app): start the app again.
    if ! amqp_up "$n"; then
      ctl "$n" await_startup >/dev/null 2>&1 || ctl "$n" start_app || return 1
      wait_amqp "$n" || return 1
    fi
  done
  for n in 2 3; do
    if ! members_of "$n" | grep -qx rabbit-c1@localhost; then
      join "$n" || return 1
      wait_amqp "$n" || return 1
    fi
  done
  wait_until "three running cluster members" "$BOOT_WAIT" clustered
}

stop_all() {
  local n pid
  for n in "${NODES[@]}"; do
    if vm_up "$n"; then
      log "stopping $(node_name "$n")"
      ctl "$n" stop >/dev/null 2>&1 || true
    fi
  done
  for n in "${NODES[@]}"; do
    if vm_up "$n" && pid=$(node_pid "$n"); then
      log "$(node_name "$n") did not stop: SIGKILL $pid"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait_until "$(node_name "$n") to leave epmd" 30 bash -c "! epmd -names | grep -q '^name rabbit-c$n at port '" ||
      true
  done
}

wipe() {
  local n
  for n in "${NODES[@]}"; do rm -rf "$(node_dir "$n")"; done
}

cmd_start() {
  preflight
  mkdir -p "$BASE"
  chmod 755 "$BASE"
  # One start at a time: the vitest globalSetup and a test file may both ask for it.
  exec 9>"$BASE/.lock"
  flock 9
  if healthy; then
    log "cluster already running"
    return 0
  fi
  # Nothing of ours runs: start from empty data dirs (a fresh cluster forms faster and more
  # surely than three stopped members waiting for each other's tables).
  local n any=0
  for n in "${NODES[@]}"; do vm_up "$n" && any=1; done
  ((any)) || wipe
  if try_start; then
    log "cluster running: $(running_nodes 1 | tr '\n' ' ')"
    return 0
  fi
  log "repair failed: rebuilding the cluster from scratch"
  stop_all
  wipe
  try_start || die "the cluster did not start; see $BASE/c*/log"
  log "cluster running: $(running_nodes 1 | tr '\n' ' ')"
}

cmd_stop() {
  preflight
  mkdir -p "$BASE"
  exec 9>"$BASE/.lock"
  flock 9
  stop_all
  wipe
  log "cluster stopped"
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) preflight && healthy ;;
    stop-app)
      check_node_arg "${1:-}"
      ctl "$1" stop_app
      ;;
    start-app)
      check_node_arg "${1:-}"
      ctl "$1" start_app
      wait_amqp "$1"
      ;;
    kill)
      check_node_arg "${1:-}"
      local pid
      pid=$(node_pid "$1") || die "no beam process for $(node_name "$1")"
      kill -KILL "$pid"
      wait_until "$(node_name "$1") to leave epmd" 30 bash -c "! epmd -names | grep -q '^name rabbit-c$1 at port '"
      ;;
    boot)
      check_node_arg "${1:-}"
      preflight
      vm_up "$1" || boot_vm "$1"
      wait_amqp "$1"
      ;;
    pid)
      check_node_arg "${1:-}"
      node_pid "$1"
      ;;
    ctl)
      check_node_arg "${1:-}"
      local n=$1
      shift
      ctl "$n" "$@"
      ;;
    *)
      sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
}

main "$@"
