#!/usr/bin/env bash
# Benchmark: drain a backlog of N row changes (default 1,000,000) from a logical slot.
#   server: the server decoding the same backlog (pgoutput) for
#           pg_logical_slot_peek_binary_changes on a twin slot, rows counted in SQL
#   floor : pg_recvlogical decoding the same backlog (pgoutput) to /dev/null
#   cdcd  : the daemon (release build) draining it into a Kafka-protocol broker
#           (cdcd-mock-broker, librdkafka's mock cluster, on this machine)
# Both slots see identical WAL. Prints rows/s, the ratio, and cdcd's peak RSS (VmHWM).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROWS=${ROWS:-1000000}
TXN_ROWS=${TXN_ROWS:-1000}
STATE=${STATE:-/tmp/cdcd-bench}
PORT=${PORT:-54332}
scripts/deps.sh
cargo build --release --bins --quiet
rm -rf "$STATE/state" && mkdir -p "$STATE/state"
BASE=$(scripts/pg.sh start "$STATE/pg" "$PORT" logical)
export PGPASSWORD=cdcd
psql() { command psql -h 127.0.0.1 -p "$PORT" -U cdcd -qtA "$@"; }
psql -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database='bench'" >/dev/null
psql -d postgres -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"
psql -d bench -c "CREATE TABLE bench (id bigint PRIMARY KEY, qty int, note text, at timestamptz, price numeric(12,2))"

start_broker
cat > "$STATE/bench.toml" <<TOML
name = "bench"
[source]
type = "postgres"
url = "$BASE/bench"
tables = ["public.bench"]
snapshot = "never"
TOML
toml_tail >> "$STATE/bench.toml"
# First start creates publication, slot and checkpoint; then stop so the backlog accumulates.
prime_checkpoint
for slot in bench_floor_a bench_floor_b bench_server; do
  pg_recvlogical -h 127.0.0.1 -p "$PORT" -U cdcd -d bench -S $slot --create-slot -P pgoutput
done

pg_write_backlog
echo "bench: backlog ends at $END_LSN"

# The floor runs before and after cdcd (cold and warm WAL); the faster run counts.
floor_run() {
  local t0 t1; t0=$(now)
  pg_recvlogical -h 127.0.0.1 -p "$PORT" -U cdcd -d bench -S "$1" --start -o proto_version=1 \
    -o publication_names=cdcd_bench --endpos="$END_LSN" -f /dev/null --no-loop
  t1=$(now); secs "$t0" "$t1"
}
# Server-side decode floor: peek (not consume) twice; the faster run counts.
server_run() {
  local t0 t1; t0=$(now)
  psql -d bench -c "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('bench_server', '$END_LSN', NULL,
    'proto_version', '1', 'publication_names', 'cdcd_bench')" > /dev/null
  t1=$(now); secs "$t0" "$t1"
}
server_a=$(server_run)
floor_a=$(floor_run bench_floor_a)
drained() {
  [ "$(psql -d postgres -c "SELECT confirmed_flush_lsn >= '$END_LSN'::pg_lsn FROM pg_replication_slots WHERE slot_name='cdcd_bench'")" = t ]
}
drain drained
floor_b=$(floor_run bench_floor_b)
server_b=$(server_run)
server_secs=$(python3 -c "print(min($server_a, $server_b))")
floor_secs=$(python3 -c "print(min($floor_a, $floor_b))")
echo "bench: floor runs ${floor_a}s (before cdcd) and ${floor_b}s (after); cdcd delivered $delivered events"

python3 - "$ROWS" "$floor_secs" "$cdcd_secs" "$peak" "$server_secs" <<'PY'
import sys
rows, floor, cdcd, peak_kb = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
server = float(sys.argv[5])
fr, cr, sr = rows / floor, rows / cdcd, rows / server
print()
print("| backlog of %d row changes | seconds | rows/s | cdcd vs this |" % rows)
print("|---|---:|---:|---:|")
print("| server decode: pg_logical_slot_peek_binary_changes (pgoutput), counted in SQL | %.2f | %.0f | %.2fx |" % (server, sr, cr / sr))
print("| floor: pg_recvlogical -> /dev/null | %.2f | %.0f | %.2fx |" % (floor, fr, cr / fr))
print("| cdcd -> Kafka (mock cluster, acks=all, idempotent) | %.2f | %.0f | 1.00x |" % (cdcd, cr))
print()
print("cdcd peak RSS (VmHWM): %.1f MB" % (peak_kb / 1024))
print("targets (issue 10): >= 400,000 rows/s: %s; >= 0.4x the server decode: %s; peak RSS < 32 MB: %s" % (
    "PASS" if cr >= 400000 else "FAIL", "PASS" if cr / sr >= 0.4 else "FAIL", "PASS" if peak_kb < 32 * 1024 else "FAIL"))
PY
psql -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'bench_floor%' OR slot_name = 'bench_server'" >/dev/null
