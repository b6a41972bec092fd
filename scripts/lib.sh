# shellcheck shell=bash disable=SC2034  # variables here are used by the scripts that source it
# Shared by the infrastructure scripts: pinned versions, ports, paths, logging and the
# helpers that start, check and stop background processes. Source it, don't run it.

# --- Pinned versions (override from the environment) ----------------------------------------
# Apache Kafka, assembled from Maven Central jars by scripts/kafka/pom.xml.
KAFKA_VERSION=${KAFKA_VERSION:-4.3.1}
LOG4J_VERSION=${LOG4J_VERSION:-2.26.1}
SLF4J_VERSION=${SLF4J_VERSION:-2.0.17}
# Go module version of github.com/jaegertracing/jaeger. Jaeger tags every release twice
# (v1.x and v2.x); only the v1.x tags resolve as a module, and at each of them cmd/jaeger
# is the Jaeger v2 binary (OpenTelemetry Collector based).
JAEGER_VERSION=${JAEGER_VERSION:-v1.76.0}

# --- Paths ----------------------------------------------------------------------------------
PERFLAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPTS_DIR=$PERFLAB_ROOT/scripts
# Built or downloaded artefacts, keyed by version, outside the clone: a fresh clone on the
# same machine reuses them.
PERFLAB_CACHE=${PERFLAB_CACHE:-$HOME/.cache/perflab}
# Runtime state (pid files, logs, data directories), inside the clone but git-ignored.
PERFLAB_DATA=${PERFLAB_DATA:-$PERFLAB_ROOT/.local}
RUN_DIR=$PERFLAB_DATA/run
LOG_DIR=$PERFLAB_DATA/logs

KAFKA_LIBS=$PERFLAB_CACHE/kafka-$KAFKA_VERSION/libs
JAEGER_BIN=$PERFLAB_CACHE/jaeger-$JAEGER_VERSION/jaeger

# --- Ports (everything listens on 127.0.0.1 only) -------------------------------------------
PERFLAB_HOST=127.0.0.1
POSTGRES_PORT=${POSTGRES_PORT:-15432}
REDIS_PORT=${REDIS_PORT:-16379}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-19090}
JAEGER_OTLP_GRPC_PORT=${JAEGER_OTLP_GRPC_PORT:-14317}
JAEGER_OTLP_HTTP_PORT=${JAEGER_OTLP_HTTP_PORT:-14318}
JAEGER_UI_PORT=${JAEGER_UI_PORT:-16686}
JAEGER_QUERY_GRPC_PORT=${JAEGER_QUERY_GRPC_PORT:-16685}
JAEGER_HEALTH_PORT=${JAEGER_HEALTH_PORT:-13133}
export JAEGER_OTLP_GRPC_PORT JAEGER_OTLP_HTTP_PORT JAEGER_UI_PORT JAEGER_QUERY_GRPC_PORT \
  JAEGER_HEALTH_PORT

# --- Sizes (2 cores, tests run alongside: keep every component small) -----------------------
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}
REDIS_MAXMEMORY=${REDIS_MAXMEMORY:-512mb}
JAEGER_MAX_TRACES=${JAEGER_MAX_TRACES:-100000}
JAEGER_GOMEMLIMIT=${JAEGER_GOMEMLIMIT:-1GiB}
PROMETHEUS_RETENTION=${PROMETHEUS_RETENTION:-2d}
export JAEGER_MAX_TRACES

# Unprivileged account that runs PostgreSQL when these scripts run as root.
PERFLAB_PG_USER=${PERFLAB_PG_USER:-perflab}

# --- Logging --------------------------------------------------------------------------------
log() { printf '%s [perflab] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- Lookups --------------------------------------------------------------------------------
# Directory of the newest installed PostgreSQL server binaries (Debian keeps them out of PATH).
pg_bindir() {
  local d
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
    sort -V | tail -n 1)
  if [[ -n $d && -x $d/postgres ]]; then
    echo "$d"
  elif command -v postgres >/dev/null; then
    dirname "$(command -v postgres)"
  else
    return 1
  fi
}

# Runs a Kafka command-line tool class from the cached jars, e.g.
#   kafka_class org.apache.kafka.tools.TopicCommand --bootstrap-server ... --list
kafka_class() {
  local cls=$1
  shift
  [[ -d $KAFKA_LIBS ]] || die "Kafka jars missing in $KAFKA_LIBS: run scripts/install-infra.sh"
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$SCRIPTS_DIR/kafka/tools-log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$cls" "$@"
}

# Replaces ${NAME} by the value of the shell variable NAME for each NAME given.
render_template() {
  local in=$1 out=$2 content name
  shift 2
  content=$(<"$in")
  for name in "$@"; do
    content=${content//"\${$name}"/${!name}}
  done
  printf '%s\n' "$content" >"$out"
}

# --- Waiting --------------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_for_port HOST PORT TIMEOUT_SECONDS
wait_for_port() {
  local host=$1 port=$2 timeout=${3:-30} deadline
  deadline=$((SECONDS + timeout))
  until port_open "$host" "$port"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# wait_healthy NAME TIMEOUT_SECONDS CMD...: retries CMD until it succeeds; gives up early
# when NAME's process has died. Points at the log file on failure.
wait_healthy() {
  local name=$1 timeout=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! owned_pid "$name" >/dev/null; then
      tail -n 20 "$LOG_DIR/$name.log" >&2 2>/dev/null || true
      die "$name exited during start-up; see $LOG_DIR/$name.log"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$LOG_DIR/$name.log" >&2 2>/dev/null || true
      die "$name not healthy after ${timeout}s; see $LOG_DIR/$name.log"
    fi
    sleep 0.5
  done
}

# --- Background processes -------------------------------------------------------------------
# Each component NAME runs with its working directory $PERFLAB_DATA/NAME and its pid in
# $RUN_DIR/NAME.pid. A pid counts as ours only while that process is alive, still has that
# working directory and its command line names the expected program (PROGRAM[NAME]).
declare -A PROGRAM=(
  [postgres]=postgres
  [redis]=redis-server
  [kafka]=kafka.Kafka
  [prometheus]=prometheus
  [jaeger]=jaeger
)

# Prints the pid of our running NAME, or fails.
owned_pid() {
  local name=$1 pid cmdline
  [[ -f $RUN_DIR/$name.pid ]] || return 1
  pid=$(<"$RUN_DIR/$name.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$PERFLAB_DATA/$name" ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"${PROGRAM[$name]}"* ]] || return 1
  echo "$pid"
}

# start_bg NAME CMD...: runs CMD detached (own session, no terminal), output appended to
# $LOG_DIR/NAME.log, working directory $PERFLAB_DATA/NAME.
start_bg() {
  local name=$1 pid
  shift
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$PERFLAB_DATA/$name"
  printf '\n===== %s start: %s\n' "$(date -Is)" "$*" >>"$LOG_DIR/$name.log"
  # The subshell is not a process-group leader, so setsid and nohup exec in place and $!
  # is the pid of CMD itself.
  (cd "$PERFLAB_DATA/$name" && exec setsid nohup "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null 8>&- 9>&-) &
  pid=$!
  echo "$pid" >"$RUN_DIR/$name.pid"
}

# True while PID exists and is not a zombie (PID 1 here may be slow to reap orphans).
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  state=${state%% *}
  [[ -n $state && $state != Z ]]
}

# stop_bg NAME [SIGNAL] [TIMEOUT_SECONDS]: stops our NAME (only if the pid file still names
# it), escalating to SIGKILL after the timeout.
stop_bg() {
  local name=$1 signal=${2:-TERM} timeout=${3:-30} pid deadline
  if ! pid=$(owned_pid "$name"); then
    [[ -f $RUN_DIR/$name.pid ]] && log "$name: stale pid file removed (process not ours or gone)"
    rm -f "$RUN_DIR/$name.pid"
    return 0
  fi
  log "$name: stopping pid $pid (SIG$signal)"
  kill "-$signal" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "$name: still alive after ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$RUN_DIR/$name.pid"
}
