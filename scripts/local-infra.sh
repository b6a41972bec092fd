#!/usr/bin/env bash
# Runs the lab's infrastructure as plain background processes on 127.0.0.1:
#   scripts/local-infra.sh up [COMPONENT...]     start what is not running, wait until healthy
#   scripts/local-infra.sh down [COMPONENT...]   stop what `up` started (pid files, nothing else)
#   scripts/local-infra.sh status                show what runs where
# Components: postgres redis kafka prometheus jaeger (default: all).
# Needs scripts/install-infra.sh first. State lives in $PERFLAB_DATA (default <repo>/.local):
# data under <component>/, pid files under run/, logs under logs/.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

COMPONENTS=(postgres redis kafka prometheus jaeger)
PGDATA=$PERFLAB_DATA/postgres
PG_DATABASES=(orders payments)

# --- PostgreSQL -----------------------------------------------------------------------------
# Command prefix that runs a program as the PostgreSQL owner (root may not run postgres);
# setpriv execs in place, so the pid recorded is the server's own.
AS_PG_USER=()
((EUID != 0)) ||
  AS_PG_USER=(setpriv --reuid="$PERFLAB_PG_USER" --regid="$PERFLAB_PG_USER" --init-groups --)

prepare_postgres() {
  local bindir
  bindir=$(pg_bindir) || die "no PostgreSQL server binaries: run scripts/install-infra.sh"
  if ((EUID == 0)) && ! id -u "$PERFLAB_PG_USER" >/dev/null 2>&1; then
    log "postgres: creating system user $PERFLAB_PG_USER to own the server"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$PERFLAB_PG_USER"
  fi
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  ((EUID != 0)) || chown "$PERFLAB_PG_USER:" "$PGDATA"
  "${AS_PG_USER[@]}" test -w "$PGDATA" ||
    die "postgres: $PGDATA is not writable by $PERFLAB_PG_USER (a parent directory not searchable?)"
  if [[ ! -f $PGDATA/PG_VERSION ]]; then
    log "postgres: initdb in $PGDATA"
    "${AS_PG_USER[@]}" "$bindir/initdb" -D "$PGDATA" -U perflab --auth=trust -E UTF8 --locale=C.UTF-8 \
      >>"$LOG_DIR/postgres.log" 2>&1 || die "initdb failed; see $LOG_DIR/postgres.log"
    cat >"$PGDATA/pg_hba.conf" <<'EOF'
# Local lab only: trust on the unix socket and on 127.0.0.1, nothing else.
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
EOF
    echo "include_if_exists = 'perflab.conf'" >>"$PGDATA/postgresql.conf"
  fi
  local version
  version=$(<"$PGDATA/PG_VERSION")
  [[ $bindir == *"/$version/bin" || $("$bindir/postgres" --version) == *" $version."* ]] ||
    die "postgres: $PGDATA was made by PostgreSQL $version, but the server found is $bindir"
  # Rewritten on every start, so the port follows POSTGRES_PORT.
  cat >"$PGDATA/perflab.conf" <<EOF
listen_addresses = '$PERFLAB_HOST'
port = $POSTGRES_PORT
unix_socket_directories = '$PGDATA'
max_connections = 300
shared_buffers = 128MB
# WAL write and fsync times in pg_stat_wal: the commit cost the write-load experiment reports.
track_wal_io_timing = on
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  ((EUID != 0)) || chown "$PERFLAB_PG_USER:" "$PGDATA"/pg_hba.conf "$PGDATA"/*.conf
  PG_BINDIR=$bindir
}

start_postgres() {
  prepare_postgres
  start_bg postgres "${AS_PG_USER[@]}" "$PG_BINDIR/postgres" -D "$PGDATA"
}

psql_admin() { psql -X -q -h "$PERFLAB_HOST" -p "$POSTGRES_PORT" -U perflab -d postgres "$@"; }

wait_postgres() {
  wait_healthy postgres 60 pg_isready -q -h "$PERFLAB_HOST" -p "$POSTGRES_PORT" -U perflab
  local db
  for db in "${PG_DATABASES[@]}"; do
    if [[ -z $(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
      log "postgres: creating database $db"
      psql_admin -c "CREATE DATABASE $db OWNER perflab"
    fi
  done
}

# --- Redis ----------------------------------------------------------------------------------
start_redis() {
  local dir=$PERFLAB_DATA/redis
  mkdir -p "$dir"
  cat >"$dir/redis.conf" <<EOF
bind $PERFLAB_HOST
port $REDIS_PORT
protected-mode yes
daemonize no
dir $dir
logfile ""
save ""
appendonly no
maxmemory $REDIS_MAXMEMORY
maxmemory-policy noeviction
EOF
  start_bg redis redis-server "$dir/redis.conf"
}

redis_ping() { [[ $(redis-cli -h "$PERFLAB_HOST" -p "$REDIS_PORT" ping) == PONG ]]; }
wait_redis() { wait_healthy redis 30 redis_ping; }

# --- Kafka ----------------------------------------------------------------------------------
start_kafka() {
  local dir=$PERFLAB_DATA/kafka
  [[ -f $KAFKA_LIBS/.complete ]] || die "Kafka jars missing in $KAFKA_LIBS: run scripts/install-infra.sh"
  mkdir -p "$dir/data" "$LOG_DIR"
  # Static single-voter KRaft quorum: the ports can change between runs without reformatting.
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$PERFLAB_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$PERFLAB_HOST:$KAFKA_PORT,CONTROLLER://$PERFLAB_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$PERFLAB_HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=6
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=24
EOF
  if [[ ! -f $dir/data/meta.properties ]]; then
    local cluster_id
    cluster_id=$(kafka_class kafka.tools.StorageTool random-uuid)
    log "kafka: formatting $dir/data (cluster id $cluster_id)"
    kafka_class kafka.tools.StorageTool format --cluster-id "$cluster_id" \
      --config "$dir/server.properties" >>"$LOG_DIR/kafka.log" 2>&1 ||
      die "kafka: storage format failed; see $LOG_DIR/kafka.log"
  fi
  local heap
  read -ra heap <<<"$KAFKA_HEAP_OPTS"
  start_bg kafka java "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -Dkafka.logs.dir="$LOG_DIR" \
    -Dlog4j2.configurationFile="$SCRIPTS_DIR/kafka/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties"
}

kafka_list_topics() {
  kafka_class org.apache.kafka.tools.TopicCommand --bootstrap-server "$PERFLAB_HOST:$KAFKA_PORT" --list
}

wait_kafka() {
  wait_healthy kafka 90 port_open "$PERFLAB_HOST" "$KAFKA_PORT"
  wait_healthy kafka 60 kafka_list_topics
}

# --- Prometheus -----------------------------------------------------------------------------
start_prometheus() {
  local dir=$PERFLAB_DATA/prometheus
  mkdir -p "$dir/data"
  "$SCRIPTS_DIR/prometheus-config.sh" "$dir/prometheus.yml"
  start_bg prometheus "$SCRIPTS_DIR/prometheus-run.sh" --config "$dir/prometheus.yml" \
    --port "$PROMETHEUS_PORT" --data "$dir/data"
}

wait_prometheus() {
  wait_healthy prometheus 60 curl -fsS "http://$PERFLAB_HOST:$PROMETHEUS_PORT/-/ready"
}

# --- Jaeger ---------------------------------------------------------------------------------
start_jaeger() {
  [[ -x $JAEGER_BIN ]] || die "Jaeger missing at $JAEGER_BIN: run scripts/install-infra.sh"
  start_bg jaeger env GOMEMLIMIT="$JAEGER_GOMEMLIMIT" "$JAEGER_BIN" \
    --config "$SCRIPTS_DIR/jaeger/config.yaml"
}

wait_jaeger() {
  wait_healthy jaeger 60 curl -fsS "http://$PERFLAB_HOST:$JAEGER_HEALTH_PORT/status"
  wait_healthy jaeger 30 curl -fsS "http://$PERFLAB_HOST:$JAEGER_UI_PORT/api/services"
}

# --- Commands -------------------------------------------------------------------------------
main_port() {
  case $1 in
    postgres) echo "$POSTGRES_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;;
    prometheus) echo "$PROMETHEUS_PORT" ;;
    jaeger) echo "$JAEGER_OTLP_GRPC_PORT" ;;
  esac
}

address() {
  local h=$PERFLAB_HOST
  case $1 in
    postgres) echo "postgresql://perflab@$h:$POSTGRES_PORT/{orders,payments}" ;;
    redis) echo "redis://$h:$REDIS_PORT/0" ;;
    kafka) echo "$h:$KAFKA_PORT (controller $h:$KAFKA_CONTROLLER_PORT)" ;;
    prometheus) echo "http://$h:$PROMETHEUS_PORT" ;;
    jaeger) echo "OTLP grpc $h:$JAEGER_OTLP_GRPC_PORT, http http://$h:$JAEGER_OTLP_HTTP_PORT; query http://$h:$JAEGER_UI_PORT" ;;
  esac
}

print_table() {
  local name pid state
  printf '%-11s %-8s %-8s %s\n' COMPONENT STATE PID ADDRESS
  for name in "${COMPONENTS[@]}"; do
    if pid=$(owned_pid "$name"); then state=running; else state=stopped pid=-; fi
    printf '%-11s %-8s %-8s %s\n' "$name" "$state" "$pid" "$(address "$name")"
  done
  printf 'data: %s   logs: %s\n' "$PERFLAB_DATA" "$LOG_DIR"
}

# Picks the named components (all when none is named), in start order.
select_components() {
  local name
  (($#)) || set -- "${COMPONENTS[@]}"
  for name in "$@"; do
    [[ " ${COMPONENTS[*]} " == *" $name "* ]] || die "unknown component $name (${COMPONENTS[*]})"
  done
  for name in "${COMPONENTS[@]}"; do
    [[ " $* " != *" $name "* ]] || echo "$name"
  done
}

cmd_up() {
  local name pid port selected started=()
  mapfile -t selected < <(select_components "$@")
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  for name in "${selected[@]}"; do
    if pid=$(owned_pid "$name"); then
      log "$name: already running (pid $pid)"
      continue
    fi
    port=$(main_port "$name")
    ! port_open "$PERFLAB_HOST" "$port" ||
      die "$name: port $port is already taken by a process this script did not start"
    log "$name: starting (log: $LOG_DIR/$name.log)"
    "start_$name"
    started+=("$name")
  done
  for name in "${selected[@]}"; do
    "wait_$name"
    [[ " ${started[*]} " != *" $name "* ]] || log "$name: healthy"
  done
  print_table
}

cmd_down() {
  local selected i
  mapfile -t selected < <(select_components "$@")
  for ((i = ${#selected[@]} - 1; i >= 0; i--)); do
    case ${selected[i]} in
      postgres) stop_bg postgres INT 60 ;; # SIGINT: postgres' fast shutdown
      kafka) stop_bg kafka TERM 60 ;;
      *) stop_bg "${selected[i]}" TERM 30 ;;
    esac
  done
  log "stopped: ${selected[*]}"
}

# One `up` or `down` at a time (tests, experiments and a user may call it together): two
# racing starts of a component would fight over its port and data directory.
lock() {
  mkdir -p "$RUN_DIR"
  exec 8>"$RUN_DIR/infra.lock"
  flock 8
}

case ${1:-} in
  up) lock && cmd_up "${@:2}" ;;
  down) lock && cmd_down "${@:2}" ;;
  status) print_table ;;
  *)
    echo "usage: $0 up|down [COMPONENT...] | status   (components: ${COMPONENTS[*]})" >&2
    exit 2
    ;;
esac
