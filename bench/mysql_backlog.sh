#!/usr/bin/env bash
# Benchmark: drain a MariaDB binlog backlog of N row changes (default 1,000,000 in 1,000
# transactions) into a Kafka-protocol broker (cdcd-mock-broker), beside two floors measured in
# the same run:
#   decode floor : mariadb-binlog --read-from-remote-server --verbose, same events, to /dev/null
#   produce floor: librdkafka producing N pre-built envelopes with cdcd's producer settings
# Prints rows/s, the ratio to each floor, and cdcd's peak RSS (VmHWM).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
TXNS=${TXNS:-1000}
STATE=${STATE:-/tmp/cdcd-bench-mysql}
PORT=${PORT:-33062}
scripts/deps.sh
cargo build --release --bins --example kafka_floor --quiet
rm -rf "$STATE/state" && mkdir -p "$STATE/state"
URL=$(scripts/mariadb.sh start "$STATE/mariadb" "$PORT")
my() { mariadb -h127.0.0.1 -P"$PORT" -ucdcd -pcdcd -N -B "$@"; }
my -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench;
       CREATE TABLE bench.bench (id bigint PRIMARY KEY, qty int, note varchar(64), at datetime(6), price decimal(12,2))"

./target/release/cdcd-mock-broker > "$STATE/broker.out" &
BROKER_PID=$!
CDCD_PID=
trap 'kill $BROKER_PID 2>/dev/null || true; [ -n "$CDCD_PID" ] && kill $CDCD_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q bootstrap= "$STATE/broker.out" && break; sleep 0.1; done
BOOT=$(sed -n 's/^bootstrap=//p' "$STATE/broker.out")
cat > "$STATE/bench.toml" <<TOML
name = "mybench"
[source]
type = "mysql"
url = "$URL"
tables = ["bench.bench"]
server_id = 7001
snapshot = "never"
[sink]
type = "kafka"
brokers = "$BOOT"
[checkpoint]
path = "$STATE/state"
interval_ms = 100
TOML
# First start records the current binlog end as the checkpoint; then the backlog accumulates.
./target/release/cdcd run --config "$STATE/bench.toml" 2> "$STATE/cdcd-setup.log" &
CDCD_PID=$!
for _ in $(seq 100); do [ -s "$STATE/state/checkpoint.json" ] && break; sleep 0.1; done
kill -TERM $CDCD_PID; wait $CDCD_PID || true; CDCD_PID=
read -r START_FILE START_POS < <(my -e "SHOW MASTER STATUS" | awk '{print $1, $2}')

echo "bench: writing $ROWS row changes in $TXNS transactions..."
PER=$((ROWS / TXNS))
my bench <<SQL
DELIMITER //
BEGIN NOT ATOMIC
  FOR i IN 0 .. $((TXNS - 1)) DO
    INSERT INTO bench SELECT seq, seq % 1000, CONCAT('note ', seq), NOW(6), seq / 100
      FROM seq_1_to_${ROWS} WHERE seq BETWEEN i * $PER + 1 AND (i + 1) * $PER;
  END FOR;
END //
DELIMITER ;
SQL
read -r END_FILE END_POS < <(my -e "SHOW MASTER STATUS" | awk '{print $1, $2}')
echo "bench: backlog from $START_FILE:$START_POS to $END_FILE:$END_POS"

now() { date +%s.%N; }
secs() { python3 -c "print($2 - $1)"; }

t0=$(now)
mariadb-binlog --read-from-remote-server -h127.0.0.1 -P"$PORT" -ucdcd -pcdcd --verbose \
  --start-position="$START_POS" --to-last-log "$START_FILE" > /dev/null
decode_secs=$(secs "$t0" "$(now)")

produce_secs=$(./target/release/examples/kafka_floor "$BOOT" floor.bench "$ROWS")

t0=$(now)
./target/release/cdcd run --config "$STATE/bench.toml" 2> "$STATE/cdcd.log" &
CDCD_PID=$!
peak=0
end_seq=$((10#${END_FILE##*.}))
while true; do
  hwm=$(awk '/VmHWM/ {print $2}' /proc/$CDCD_PID/status 2>/dev/null || echo 0)
  [ "${hwm:-0}" -gt "$peak" ] && peak=$hwm
  done_yet=$(python3 - "$STATE/state/checkpoint.json" "$end_seq" "$END_POS" <<'PY'
import json, sys
try:
    p = json.load(open(sys.argv[1]))["position"]
    seq = int(p["file"].rsplit(".", 1)[1])
    print("t" if (seq, p["pos"]) >= (int(sys.argv[2]), int(sys.argv[3])) else "f")
except Exception:
    print("f")
PY
)
  [ "$done_yet" = t ] && break
  kill -0 $CDCD_PID 2>/dev/null || { echo "cdcd exited early:"; cat "$STATE/cdcd.log"; exit 1; }
  sleep 0.05
done
t1=$(now)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$CDCD_PID/status); [ "$hwm" -gt "$peak" ] && peak=$hwm
kill -TERM $CDCD_PID; wait $CDCD_PID || true; CDCD_PID=
cdcd_secs=$(secs "$t0" "$t1")
delivered=$(sed -n 's/.*stopped cleanly.*events=\([0-9]*\).*/\1/p' "$STATE/cdcd.log")
[ "${delivered:-0}" = "$ROWS" ] || { echo "bench: cdcd delivered ${delivered:-?} events, expected $ROWS"; exit 1; }

python3 - "$ROWS" "$decode_secs" "$produce_secs" "$cdcd_secs" "$peak" <<'PY'
import sys
rows, dec, prod, cdcd, peak_kb = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
d, p, c = rows / dec, rows / prod, rows / cdcd
print()
print("| binlog backlog of %d row changes | seconds | rows/s | cdcd vs this |" % rows)
print("|---|---:|---:|---:|")
print("| floor: mariadb-binlog --read-from-remote-server --verbose -> /dev/null | %.2f | %.0f | %.2fx |" % (dec, d, c / d))
print("| floor: librdkafka producing %d pre-built envelopes | %.2f | %.0f | %.2fx |" % (rows, prod, p, c / p))
print("| cdcd: binlog -> envelope -> Kafka (acks=all, idempotent) | %.2f | %.0f | 1.00x |" % (cdcd, c))
print()
print("cdcd peak RSS (VmHWM): %.1f MB" % (peak_kb / 1024))
print("targets: >= 100,000 rows/s: %s; peak RSS < 64 MB: %s" % ("PASS" if c >= 100000 else "FAIL", "PASS" if peak_kb < 64 * 1024 else "FAIL"))
PY
