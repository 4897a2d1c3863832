#!/usr/bin/env bash
# Benchmark: drain a backlog of N row changes (default 1,000,000 in transactions of 1,000) from
# logical slots that all see the same WAL, over TCP (127.0.0.1) and over the server's Unix socket:
#   server: the server decoding the backlog (pgoutput) for pg_logical_slot_peek_binary_changes
#           on a twin slot, rows counted in SQL: decoding with no walsender and no socket
#   floor : pg_recvlogical streaming it (pgoutput) to /dev/null, over each transport
#   cdcd  : the daemon (release build) draining it into a Kafka-protocol broker
#           (cdcd-mock-broker, librdkafka's mock cluster, on this machine), over each transport
# A walsender sends every change with its own send(2); over loopback TCP that system call costs
# more than decoding the change, so the transport sets the ceiling. Prints rows/s, ratios and
# cdcd's peak RSS (VmHWM).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROWS=${ROWS:-1000000}
TXN_ROWS=${TXN_ROWS:-1000}
STATE=${STATE:-/tmp/cdcd-bench}
PORT=${PORT:-54332}
scripts/deps.sh
cargo build --release --bins --quiet
rm -rf "$STATE/state-tcp" "$STATE/state-unix"
BASE=$(scripts/pg.sh start "$STATE/pg" "$PORT" logical)
SOCKET_DIR=$STATE/pg
export PGPASSWORD=cdcd
psql() { command psql -h 127.0.0.1 -p "$PORT" -U cdcd -qtA "$@"; }
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
for slot in floor_tcp_a floor_tcp_b floor_unix_a floor_unix_b bench_server; do
  pg_recvlogical -h 127.0.0.1 -p "$PORT" -U cdcd -d bench -S $slot --create-slot -P pgoutput
done

pg_write_backlog
echo "bench: backlog ends at $END_LSN"

# Each floor runs before and after cdcd (cold and warm WAL); the faster run counts.
floor_run() { # $1 slot, $2 host (127.0.0.1 or the socket directory)
  local t0 t1; t0=$(now)
  pg_recvlogical -h "$2" -p "$PORT" -U cdcd -d bench -S "$1" --start -o proto_version=1 \
    -o publication_names=cdcd_bench --endpos="$END_LSN" -f /dev/null --no-loop
  t1=$(now); secs "$t0" "$t1"
}
# Server-side decode floor: peek (not consume); the faster of two runs counts.
server_run() {
  local t0 t1; t0=$(now)
  psql -d bench -c "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('bench_server', '$END_LSN', NULL,
    'proto_version', '1', 'publication_names', 'cdcd_bench')" > /dev/null
  t1=$(now); secs "$t0" "$t1"
}
server_a=$(server_run)
floor_tcp_a=$(floor_run floor_tcp_a 127.0.0.1)
floor_unix_a=$(floor_run floor_unix_a "$SOCKET_DIR")
for transport in tcp unix; do
  wait_slot "cdcd_bench_$transport" "$END_LSN"
  CONFIG=$STATE/bench-$transport.toml CKPT=$STATE/state-$transport drain slot_drained
  eval "cdcd_$transport=$cdcd_secs peak_$transport=$peak cpu_$transport=$cpu"
done
floor_tcp_b=$(floor_run floor_tcp_b 127.0.0.1)
floor_unix_b=$(floor_run floor_unix_b "$SOCKET_DIR")
server_b=$(server_run)
echo "bench: floor runs over TCP ${floor_tcp_a}s / ${floor_tcp_b}s, over the Unix socket ${floor_unix_a}s / ${floor_unix_b}s (before / after cdcd)"

python3 - "$ROWS" "$(python3 -c "print(min($server_a, $server_b))")" \
  "$(python3 -c "print(min($floor_tcp_a, $floor_tcp_b))")" "$(python3 -c "print(min($floor_unix_a, $floor_unix_b))")" \
  "$cdcd_tcp" "$cdcd_unix" "$peak_tcp" "$peak_unix" "$cpu_tcp" "$cpu_unix" "$TXN_ROWS" <<'PY'
import sys
rows = int(sys.argv[1])
txn_rows = int(sys.argv[11])
txns = "one transaction" if txn_rows >= rows else "{:,} transactions".format(rows // txn_rows)
server, floor_tcp, floor_unix, cdcd_tcp, cdcd_unix = map(float, sys.argv[2:7])
peak_tcp, peak_unix = int(sys.argv[7]), int(sys.argv[8])
cpu = {"TCP": float(sys.argv[9]), "Unix socket": float(sys.argv[10])}
rate = lambda s: rows / s
sr = rate(server)
print()
print("| backlog of %d row changes | seconds | rows/s | vs server decode | peak RSS |" % rows)
print("|---|---:|---:|---:|---:|")
print("| server decode: pg_logical_slot_peek_binary_changes (pgoutput), counted in SQL | %.2f | %.0f | 1.00x | |" % (server, sr))
for name, s, peak in [("floor: pg_recvlogical -> /dev/null, TCP", floor_tcp, None),
                      ("floor: pg_recvlogical -> /dev/null, Unix socket", floor_unix, None),
                      ("cdcd -> Kafka (mock cluster, acks=all, idempotent), TCP", cdcd_tcp, peak_tcp),
                      ("cdcd -> Kafka (mock cluster, acks=all, idempotent), Unix socket", cdcd_unix, peak_unix)]:
    print("| %s | %.2f | %.0f | %.2fx | %s |" % (name, s, rate(s), rate(s) / sr, "%.1f MB" % (peak / 1024) if peak else ""))
print()
print("cdcd's CPU time (all threads): %.2f s over TCP, %.2f s over the Unix socket" % (cpu["TCP"], cpu["Unix socket"]))
for name, s, peak, floor in [("TCP", cdcd_tcp, peak_tcp, floor_tcp), ("Unix socket", cdcd_unix, peak_unix, floor_unix)]:
    cr = rate(s)
    # One line per transport for bench/run.sh's summary table.
    print("summary|PostgreSQL backlog, %s rows in %s, %s|%.0f rows/s|server decode (peek); pg_recvlogical %.0f rows/s|%.0f rows/s|%.2fx|%.1f MB" % (
        "{:,}".format(rows), txns, name, cr, rate(floor), sr, cr / sr, peak / 1024))
    print("targets (issue 10), cdcd over %s: >= 400,000 rows/s: %s; >= 0.4x the server decode: %s; peak RSS < 32 MB: %s" % (
        name, "PASS" if cr >= 400000 else "FAIL", "PASS" if cr / sr >= 0.4 else "FAIL", "PASS" if peak < 32 * 1024 else "FAIL"))
PY
psql -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'floor_%' OR slot_name = 'bench_server'" >/dev/null
