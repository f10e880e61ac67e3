#!/usr/bin/env bash
# The local demo: installs what is missing, builds, starts a private Redis
# (its own unix socket and data directory), a coordinator and three
# workers, renders examples/demo.json and prints where the MP4 is.
# Everything it starts is stopped when it ends; with DEMO_STAY=1 the farm
# stays up (for the dashboard) until Ctrl-C. DEMO_HTTP sets the dashboard's
# port on loopback (default 8080; 0 picks a free one).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
scripts/setup.sh build

RUN="$ROOT/run/demo"
rm -rf "$RUN"
mkdir -p "$RUN/redis" "$ROOT/out"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# Redis with append-only persistence: the farm's state must survive a
# Redis restart (see README, "State in Redis").
redis-server --port 0 --unixsocket "$RUN/redis.sock" --dir "$RUN/redis" \
  --appendonly yes --appendfsync everysec --save "" --daemonize no \
  >"$RUN/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  redis-cli -s "$RUN/redis.sock" ping >/dev/null 2>&1 && break
  sleep 0.1
done

WEP="ipc://$RUN/workers.sock"
CEP="ipc://$RUN/clients.sock"
build/rfarm-coordinator --worker-bind "$WEP" --client-bind "$CEP" \
  --redis "unix:$RUN/redis.sock" --spool "$RUN/spool" --http "${DEMO_HTTP:-8080}" \
  2>"$RUN/coordinator.log" &
PIDS+=($!)
for _ in $(seq 100); do
  grep -q "coordinator ready" "$RUN/coordinator.log" 2>/dev/null && break
  sleep 0.1
done
PORT=$(sed -n 's/.*coordinator ready.* http_port=\([0-9]*\).*/\1/p' "$RUN/coordinator.log")
[ -n "$PORT" ] || { echo "demo: the coordinator did not start:" >&2; cat "$RUN/coordinator.log" >&2; exit 1; }
echo "demo: dashboard at http://127.0.0.1:$PORT/"
for i in 1 2 3; do
  build/rfarm-worker --connect "$WEP" --id "demo-worker-$i" 2>"$RUN/worker-$i.log" &
  PIDS+=($!)
done

export RFARM_ENDPOINT="$CEP"
JOB=$(build/rfarm submit examples/demo.json)
echo "demo: submitted $JOB; rendering on 3 workers (logs in $RUN)"
build/rfarm wait "$JOB" --timeout 600
build/rfarm status "$JOB"
OUT=$(build/rfarm status "$JOB" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["output"])')
echo "demo: video written to $OUT"
if [ "${DEMO_STAY:-0}" = 1 ]; then
  echo "demo: the farm stays up; dashboard at http://127.0.0.1:$PORT/ (Ctrl-C stops it)"
  wait "${PIDS[1]}"
fi
