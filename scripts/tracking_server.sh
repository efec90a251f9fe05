#!/usr/bin/env bash
# A shared MLflow tracking server: PostgreSQL backend store, local artifact root, loopback only.
#
#   make tracking-server                     # PostgreSQL on 5433, MLflow on 5050, 127.0.0.1
#   BPLAB_SERVER_PORT=5050 BPLAB_PG_PORT=5434 BPLAB_HOST=0.0.0.0 make tracking-server
#
# Then point runs at it:  bplab-train experiment=xor_mlp tracking.uri=http://127.0.0.1:5050
# State lives in .bplab/ (database cluster, artifacts, logs); Ctrl-C stops MLflow and PostgreSQL.
# Needs Debian's postgresql package (apt-get install -y postgresql) and the project's `server`
# extra (psycopg2), which `make install` installs.
#
# Security: PostgreSQL accepts TCP connections (from 127.0.0.1 only) with a password
# (scram-sha-256) and its Unix socket from the 'postgres' system user alone (peer). The password
# is generated on first start and kept, readable by you alone (0600), in $STATE/pg_password;
# MLflow gets it through its environment, never on a command line other users can read. The
# MLflow server itself has no login: it is for one trusted user or a private network.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOST="${BPLAB_HOST:-127.0.0.1}"
PORT="${BPLAB_SERVER_PORT:-5050}"
PG_PORT="${BPLAB_PG_PORT:-5433}"
STATE="${BPLAB_SERVER_STATE:-$ROOT/.bplab/server}"
PGDATA="$STATE/postgres"
ARTIFACTS="$STATE/artifacts"
MLFLOW="${BPLAB_MLFLOW:-$ROOT/.venv/bin/mlflow}"
DETACH="${BPLAB_DETACH:-0}"

PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$PG_BIN" ]; then
  echo "tracking-server: error: PostgreSQL is not installed; install it with: apt-get install -y postgresql" >&2
  exit 2
fi
if [ ! -x "$MLFLOW" ]; then
  echo "tracking-server: error: $MLFLOW not found; run make install first" >&2
  exit 2
fi

# PostgreSQL refuses to run as root: run it as the 'postgres' user the package creates.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p "$STATE" "$ARTIFACTS"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$PGDATA"
  if ! as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth-local=peer \
    --auth-host=scram-sha-256 >"$STATE/initdb.log" 2>&1; then
    echo "tracking-server: error: initdb failed (the postgres user needs access to $STATE); log:" >&2
    tail -n 5 "$STATE/initdb.log" >&2
    exit 1
  fi
fi
[ "$(id -u)" = 0 ] && chown postgres:postgres "$STATE"
if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
    -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null; then
    echo "tracking-server: error: PostgreSQL did not start; log:" >&2
    tail -n 5 "$PGDATA/server.log" >&2
    exit 1
  fi
fi
# The password: generated once, 0600, and set through the Unix socket (peer authentication).
PASSWORD_FILE="$STATE/pg_password"
if [ ! -s "$PASSWORD_FILE" ]; then
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$PASSWORD_FILE")
fi
chmod 600 "$PASSWORD_FILE"
PG_PASSWORD="$(cat "$PASSWORD_FILE")"
as_pg "$PG_BIN/psql" -h /tmp -p "$PG_PORT" -U postgres -qtAc \
  "ALTER USER postgres PASSWORD '$PG_PASSWORD'" >/dev/null
# Clusters made by older versions trusted every local connection: replace their rules.
cat >"$STATE/pg_hba.conf.new" <<HBA
local all postgres peer
host all all 127.0.0.1/32 scram-sha-256
HBA
if ! cmp -s "$STATE/pg_hba.conf.new" "$PGDATA/pg_hba.conf"; then
  install -m 600 -o "$(stat -c %u "$PGDATA")" "$STATE/pg_hba.conf.new" "$PGDATA/pg_hba.conf"
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" reload >/dev/null
fi
rm -f "$STATE/pg_hba.conf.new"
if ! as_pg "$PG_BIN/psql" -h /tmp -p "$PG_PORT" -U postgres -tAc "select 1 from pg_database where datname='mlflow'" | grep -q 1; then
  as_pg "$PG_BIN/createdb" -h /tmp -p "$PG_PORT" -U postgres mlflow
fi

stop() {
  [ -n "${SERVER_PID:-}" ] && kill -- "-$SERVER_PID" 2>/dev/null || true
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
}

BACKEND="postgresql+psycopg2://postgres@127.0.0.1:$PG_PORT/mlflow"
echo "PostgreSQL backend store: $BACKEND (password in $PASSWORD_FILE)"
echo "Artifacts: $ARTIFACTS"
echo "Starting MLflow on http://$HOST:$PORT ..."
# Its own session and process group, so stopping it stops every worker it spawned too.
MLFLOW_DISABLE_TELEMETRY=true \
  MLFLOW_BACKEND_STORE_URI="postgresql+psycopg2://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/mlflow" \
  setsid "$MLFLOW" server --artifacts-destination "$ARTIFACTS" --host "$HOST" --port "$PORT" --workers 2 \
  >"$STATE/mlflow.log" 2>&1 &
SERVER_PID=$!
echo "$SERVER_PID" >"$STATE/mlflow.pid"
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "tracking-server: error: mlflow server exited; see $STATE/mlflow.log" >&2
    tail -n 20 "$STATE/mlflow.log" >&2
    stop
    exit 1
  fi
  sleep 0.5
done
echo
echo "Ready. Use it with:  tracking.uri=http://127.0.0.1:$PORT"
echo "   or:  export MLFLOW_TRACKING_URI=http://127.0.0.1:$PORT"
if [ "$DETACH" = 1 ]; then
  exit 0
fi
trap 'stop; exit 0' INT TERM
wait "$SERVER_PID"
stop
