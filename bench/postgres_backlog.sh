#!/usr/bin/env bash
# Benchmark: drain a backlog of N row changes (default 1,000,000 in transactions of 1,000) from
# logical slots that all see the same WAL, over TCP (127.0.0.1) and over the server's Unix socket:
#   server: the server decoding the backlog (pgoutput) for pg_logical_slot_peek_binary_changes
#           on a twin slot, rows counted in SQL: decoding with no walsender and no socket
#   walsender: the walsender streaming it to a client that only counts the messages
#           (examples/walsender_floor.rs) and pauses once it has emptied the socket (1 ms over
#           TCP, 0.2 ms over the Unix socket: the best of those tried), over each transport:
#           about the fastest any client takes it off the server on this machine
#   floor : pg_recvlogical streaming it (pgoutput) to /dev/null, over each transport
#   cdcd  : the daemon (release build) draining it into a Kafka-protocol broker
#           (cdcd-mock-broker, librdkafka's mock cluster, on this machine), over each transport
# A walsender sends every change with its own send(2); over loopback TCP that system call costs
# more than decoding the change, so the transport sets the ceiling. Prints rows/s, ratios,
# cdcd's peak RSS (VmHWM) and how many of the machine's cores each run kept busy.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROWS=${ROWS:-1000000}
TXN_ROWS=${TXN_ROWS:-1000}
STATE=${STATE:-/tmp/cdcd-bench}
PORT=${PORT:-54332}
scripts/deps.sh
cargo build --release --bins --example walsender_floor --quiet
rm -rf "$STATE/state-tcp" "$STATE/state-unix"
BASE=$(scripts/pg.sh start "$STATE/pg" "$PORT" logical)
SOCKET_DIR=$STATE/pg
export PGPASSWORD=cdcd
pg_tools "$STATE/pg"
psql() { pg_tool psql -h 127.0.0.1 -p "$PORT" -U cdcd -qtA "$@"; }
pg_recvlogical() { pg_tool pg_recvlogical "$@"; }
PG_VERSION=$(psql -d postgres -c "SHOW server_version" | cut -d' ' -f1)
echo "bench: PostgreSQL $PG_VERSION"
psql -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database='bench'" >/dev/null
psql -d postgres -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"
psql -d bench -c "CREATE TABLE bench (id bigint PRIMARY KEY, qty int, note text, at timestamptz, price numeric(12,2))"

start_broker
# Two connectors, one per transport, each with its own slot and checkpoint.
for transport in tcp unix; do
  url="$BASE/bench"
  [ "$transport" = unix ] && url="postgres://cdcd@/bench?host=$SOCKET_DIR&port=$PORT"
  cat > "$STATE/bench-$transport.toml" <<TOML
name = "bench_$transport"
[source]
type = "postgres"
url = "$url"
tables = ["public.bench"]
publication = "cdcd_bench"
snapshot = "never"
TOML
  CKPT=$STATE/state-$transport toml_tail >> "$STATE/bench-$transport.toml"
  # First start creates publication, slot and checkpoint; then stop so the backlog accumulates.
  CONFIG=$STATE/bench-$transport.toml CKPT=$STATE/state-$transport prime_checkpoint
done
for slot in floor_tcp_a floor_tcp_b floor_unix_a floor_unix_b bench_server walsender_floor; do
  pg_recvlogical -h 127.0.0.1 -p "$PORT" -U cdcd -d bench -S $slot --create-slot -P pgoutput
done

pg_write_backlog
echo "bench: backlog ends at $END_LSN"

# Each floor runs before and after cdcd (cold and warm WAL); the faster run counts. Each run
# prints "seconds cores" (cores: how many of the machine's cores were busy meanwhile); the
# command's own output is dropped.
timed() {
  local t0 t1 b0 b1; t0=$(now); b0=$(machine_busy)
  "$@" > /dev/null
  t1=$(now); b1=$(machine_busy); echo "$(secs "$t0" "$t1") $(cores "$b0" "$b1" "$(secs "$t0" "$t1")")"
}
floor_run() { # $1 slot, $2 host (127.0.0.1 or the socket directory)
  timed pg_recvlogical -h "$2" -p "$PORT" -U cdcd -d bench -S "$1" --start -o proto_version=1 \
    -o publication_names=cdcd_bench --endpos="$END_LSN" -f /dev/null --no-loop
}
# The walsender to a client that only counts (the slot is never advanced, so it is reused).
walsender_run() { # $1 URL, $2 pause in µs once the socket is empty
  PAUSE_US=$2 timed ./target/release/examples/walsender_floor "$1" walsender_floor cdcd_bench "$ROWS"
}
# Server-side decode floor: peek (not consume); the faster of two runs counts.
server_run() {
  timed psql -d bench -c "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('bench_server', '$END_LSN', NULL,
    'proto_version', '1', 'publication_names', 'cdcd_bench')"
}
TCP_URL="$BASE/bench"
UNIX_URL="postgres://cdcd@/bench?host=$SOCKET_DIR&port=$PORT"
server_a=$(server_run)
floor_tcp_a=$(floor_run floor_tcp_a 127.0.0.1)
floor_unix_a=$(floor_run floor_unix_a "$SOCKET_DIR")
ws_tcp_a=$(walsender_run "$TCP_URL" 1000)
ws_unix_a=$(walsender_run "$UNIX_URL" 200)
for transport in tcp unix; do
  wait_slot "cdcd_bench_$transport" "$END_LSN"
  b0=$(machine_busy)
  CONFIG=$STATE/bench-$transport.toml CKPT=$STATE/state-$transport drain slot_drained
  eval "cdcd_$transport=$cdcd_secs peak_$transport=$peak cpu_$transport=$cpu"
  eval "cores_$transport=$(cores "$b0" "$(machine_busy)" "$cdcd_secs")"
done
ws_tcp_b=$(walsender_run "$TCP_URL" 1000)
ws_unix_b=$(walsender_run "$UNIX_URL" 200)
floor_tcp_b=$(floor_run floor_tcp_b 127.0.0.1)
floor_unix_b=$(floor_run floor_unix_b "$SOCKET_DIR")
server_b=$(server_run)
echo "bench: seconds and busy cores, before / after cdcd: pg_recvlogical over TCP $floor_tcp_a / $floor_tcp_b, over the socket $floor_unix_a / $floor_unix_b; walsender floor over TCP $ws_tcp_a / $ws_tcp_b, over the socket $ws_unix_a / $ws_unix_b"
# The faster of two "seconds cores" runs.
best() { if python3 -c "import sys; sys.exit(not float('${1% *}') <= float('${2% *}'))"; then echo "$1"; else echo "$2"; fi; }

SERVER=$(best "$server_a" "$server_b") \
FLOOR_TCP=$(best "$floor_tcp_a" "$floor_tcp_b") FLOOR_UNIX=$(best "$floor_unix_a" "$floor_unix_b") \
WS_TCP=$(best "$ws_tcp_a" "$ws_tcp_b") WS_UNIX=$(best "$ws_unix_a" "$ws_unix_b") \
CDCD_TCP="$cdcd_tcp $cores_tcp" CDCD_UNIX="$cdcd_unix $cores_unix" PEAK_TCP=$peak_tcp PEAK_UNIX=$peak_unix \
CPU_TCP=$cpu_tcp CPU_UNIX=$cpu_unix ROWS=$ROWS TXN_ROWS=$TXN_ROWS PG_VERSION=$PG_VERSION python3 - <<'PY'
import os
e = os.environ
rows, txn_rows = int(e["ROWS"]), int(e["TXN_ROWS"])
txns = "one transaction" if txn_rows >= rows else "{:,} transactions".format(rows // txn_rows)
run = lambda k: tuple(map(float, e[k].split()))  # (seconds, busy cores)
rate = lambda s: rows / s
sr = rate(run("SERVER")[0])
print()
print("| backlog of %d row changes, PostgreSQL %s | seconds | rows/s | vs server decode | busy cores (of 2) | peak RSS |" % (rows, e["PG_VERSION"]))
print("|---|---:|---:|---:|---:|---:|")
print("| server decode: pg_logical_slot_peek_binary_changes (pgoutput), counted in SQL | %.2f | %.0f | 1.00x | %.2f | |" % (
    rows / sr, sr, run("SERVER")[1]))
for name, key, peak in [("walsender floor: a client that only counts, pausing 1 ms when idle, TCP", "WS_TCP", None),
                        ("walsender floor: a client that only counts, pausing 0.2 ms when idle, Unix socket", "WS_UNIX", None),
                        ("pg_recvlogical -> /dev/null, TCP", "FLOOR_TCP", None),
                        ("pg_recvlogical -> /dev/null, Unix socket", "FLOOR_UNIX", None),
                        ("cdcd -> Kafka (mock cluster, acks=all, idempotent), TCP", "CDCD_TCP", "PEAK_TCP"),
                        ("cdcd -> Kafka (mock cluster, acks=all, idempotent), Unix socket", "CDCD_UNIX", "PEAK_UNIX")]:
    s, busy = run(key)
    print("| %s | %.2f | %.0f | %.2fx | %.2f | %s |" % (
        name, s, rate(s), rate(s) / sr, busy, "%.1f MB" % (int(e[peak]) / 1024) if peak else ""))
print()
print("cdcd's CPU time (all threads): %s s over TCP, %s s over the Unix socket" % (e["CPU_TCP"], e["CPU_UNIX"]))
for name, t in [("TCP", "TCP"), ("Unix socket", "UNIX")]:
    cr, ws, peak = rate(run("CDCD_" + t)[0]), rate(run("WS_" + t)[0]), int(e["PEAK_" + t])
    # One line per transport for bench/run.sh's summary table.
    print("summary|PostgreSQL %s backlog, %s rows in %s, %s|%.0f rows/s|server decode (peek); walsender floor %.0f, pg_recvlogical %.0f rows/s|%.0f rows/s|%.2fx|%.1f MB" % (
        e["PG_VERSION"], "{:,}".format(rows), txns, name, cr, ws, rate(run("FLOOR_" + t)[0]), sr, cr / sr, peak / 1024))
    print("targets (issue 10), cdcd over %s: >= 400,000 rows/s: %s; >= 0.4x the server decode: %s; peak RSS < 32 MB: %s; "
          "the walsender floor itself is %.2fx the server decode, cdcd %.2fx the walsender floor" % (
        name, "PASS" if cr >= 400000 else "FAIL", "PASS" if cr / sr >= 0.4 else "FAIL",
        "PASS" if peak < 32 * 1024 else "FAIL", ws / sr, cr / ws))
PY
psql -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'floor_%' OR slot_name IN ('bench_server', 'walsender_floor')" >/dev/null
