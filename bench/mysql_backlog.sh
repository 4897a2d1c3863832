#!/usr/bin/env bash
# Benchmark: drain a MariaDB binlog backlog of N row changes (default 1,000,000 in 1,000
# transactions) into a Kafka-protocol broker (cdcd-mock-broker), beside two floors measured in
# the same run:
#   decode floor : mariadb-binlog --read-from-remote-server --verbose, same events, to /dev/null
#   produce floor: librdkafka producing N pre-built envelopes with cdcd's producer settings
# Prints rows/s, the ratio to each floor, and cdcd's peak RSS (VmHWM). SINK_KEYS adds [sink]
# settings, e.g. SINK_KEYS='encoding = "debezium"' to time Debezium's encoding.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
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

start_broker
cat > "$STATE/bench.toml" <<TOML
name = "mybench"
[source]
type = "mysql"
url = "$URL"
tables = ["bench.bench"]
server_id = 7001
snapshot = "never"
TOML
toml_tail "${SINK_KEYS:-}" >> "$STATE/bench.toml"
# First start records the current binlog end as the checkpoint; then the backlog accumulates.
prime_checkpoint
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


t0=$(now)
mariadb-binlog --read-from-remote-server -h127.0.0.1 -P"$PORT" -ucdcd -pcdcd --verbose \
  --start-position="$START_POS" --to-last-log "$START_FILE" > /dev/null
decode_secs=$(secs "$t0" "$(now)")

produce_secs=$(./target/release/examples/kafka_floor "$BOOT" floor.bench "$ROWS")

end_seq=$((10#${END_FILE##*.}))
drained() {
  file_matches "$STATE/state/checkpoint.json" '"file":[[:space:]]*"[^"]*\.([0-9]+)",[[:space:]]*"pos":[[:space:]]*([0-9]+)' || return 1
  local seq=$((10#${BASH_REMATCH[1]})) pos=${BASH_REMATCH[2]}
  (( seq > end_seq || (seq == end_seq && pos >= END_POS) ))
}
drain drained

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
print("summary|MariaDB backlog, %s rows|%.0f rows/s|librdkafka producing pre-built envelopes|%.0f rows/s|%.2fx|%.1f MB" % (
    "{:,}".format(rows), c, p, c / p, peak_kb / 1024))
print("targets (issue 10): >= 500,000 rows/s: %s; >= 0.6x the produce floor: %s; peak RSS < 32 MB: %s" % (
    "PASS" if c >= 500000 else "FAIL", "PASS" if c / p >= 0.6 else "FAIL", "PASS" if peak_kb < 32 * 1024 else "FAIL"))
PY
