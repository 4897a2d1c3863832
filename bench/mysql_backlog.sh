#!/usr/bin/env bash
# Benchmark: drain a binlog backlog of N row changes (default 1,000,000 in 1,000 transactions)
# into a Kafka-protocol broker (cdcd-mock-broker), on MariaDB 10.11 and on Oracle MySQL 9.7 in
# the same run, beside two floors measured in that run:
#   decode floor : the server's own binlog client (mariadb-binlog / mysqlbinlog, reading from the
#                  server, --verbose), same events, to /dev/null
#   produce floor: librdkafka producing N pre-built envelopes with cdcd's producer settings
# Prints rows/s, the ratio to each floor, MySQL 9.7 against MariaDB, and cdcd's peak RSS
# (VmHWM). Both servers are reached as a user would by default: MySQL 9.7 offers TLS (its own
# certificate) and cdcd and mysqlbinlog take it; MariaDB's test server has none.
#   SOURCES="mariadb mysql97"   which servers (MySQL 9.7 needs scripts/mysql.sh's chroot)
#   SINK_KEYS='encoding = "debezium"'  adds [sink] settings (e.g. to time Debezium's encoding)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROWS=${ROWS:-1000000}
TXNS=${TXNS:-1000}
PER=$((ROWS / TXNS))
SOURCES=${SOURCES:-"mariadb mysql97"}
BASE=${STATE:-/tmp/cdcd-bench-mysql}
PORT=${PORT:-33062}
MYPORT=${MYPORT:-23307}
MYROOT=${CDCD_MYSQL_ROOT:-${CDCD_CACHE:-$HOME/.cache/cdcd}/mysql-sid}
scripts/deps.sh
cargo build --release --bins --example kafka_floor --quiet
mkdir -p "$BASE"
STATE=$BASE
start_broker
trap 'kill $BROKER_PID 2>/dev/null || true; [ -n "$CDCD_PID" ] && kill $CDCD_PID 2>/dev/null || true;
      [ -d "$BASE/mysql97/mysql97" ] && scripts/mysql.sh stop "$BASE/mysql97/mysql97" >/dev/null 2>&1 || true' EXIT

# Per server: start it, create bench.bench, and define
#   my ARGS (its client), status (file and position now), fill (writes the backlog), decode (floor)
setup_mariadb() {
  LABEL="MariaDB 10.11"
  URL=$(scripts/mariadb.sh start "$STATE/mariadb" "$PORT")
  my() { mariadb -h127.0.0.1 -P"$PORT" -ucdcd -pcdcd -N -B "$@"; }
  status() { my -e "SHOW MASTER STATUS" | awk '{print $1, $2}'; }
  fill() {
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
  }
  decode() {
    mariadb-binlog --read-from-remote-server -h127.0.0.1 -P"$PORT" -ucdcd -pcdcd --verbose \
      --start-position="$1" --to-last-log "$2" > /dev/null
  }
}
setup_mysql97() {
  LABEL="MySQL 9.7"
  URL=$(scripts/mysql.sh start "$STATE/mysql97" "$MYPORT")${MYSQL_URL_QUERY:-}
  my() { chroot "$MYROOT" mysql --no-defaults -h127.0.0.1 -P"$MYPORT" -ucdcd -pcdcd -N -B "$@" 2> >(grep -v "Using a password" >&2); }
  status() { my -e "SHOW BINARY LOG STATUS" | awk '{print $1, $2}'; }
  fill() {
    # One INSERT (one transaction) per step; MySQL has no sequence tables, a recursive CTE counts.
    { echo "SET SESSION cte_max_recursion_depth = $((PER + 10));"
      for ((i = 0; i < TXNS; i++)); do
        echo "INSERT INTO bench WITH RECURSIVE s(n) AS (SELECT $((i * PER + 1)) UNION ALL SELECT n + 1 FROM s WHERE n < $(((i + 1) * PER))) SELECT n, n % 1000, CONCAT('note ', n), NOW(6), n / 100 FROM s;"
      done; } | my bench
  }
  decode() {
    chroot "$MYROOT" mysqlbinlog --no-defaults --read-from-remote-source=BINLOG-DUMP-NON-GTIDS -h127.0.0.1 \
      -P"$MYPORT" -ucdcd -pcdcd --verbose --start-position="$1" --to-last-log "$2" > /dev/null 2> >(grep -v "Using a password" >&2)
  }
}

results=()
server_id=7001
for source in $SOURCES; do
  STATE=$BASE/$source
  CONFIG=$STATE/bench.toml
  CKPT=$STATE/state
  rm -rf "$CKPT" && mkdir -p "$CKPT"
  "setup_$source"
  my -e "DROP DATABASE IF EXISTS bench; CREATE DATABASE bench;
         CREATE TABLE bench.bench (id bigint PRIMARY KEY, qty int, note varchar(64), at datetime(6), price decimal(12,2))"
  server_id=$((server_id + 1))
  cat > "$CONFIG" <<TOML
name = "mybench"
[source]
type = "mysql"
url = "$URL"
tables = ["bench.bench"]
server_id = $server_id
snapshot = "never"
TOML
  toml_tail "${SINK_KEYS:-}" >> "$CONFIG"
  # First start records the current binlog end as the checkpoint; then the backlog accumulates.
  prime_checkpoint
  read -r START_FILE START_POS < <(status)
  echo "bench: $LABEL: writing $ROWS row changes in $TXNS transactions..."
  fill
  read -r END_FILE END_POS < <(status)
  echo "bench: $LABEL: backlog from $START_FILE:$START_POS to $END_FILE:$END_POS"

  t0=$(now)
  decode "$START_POS" "$START_FILE"
  decode_secs=$(secs "$t0" "$(now)")
  produce_secs=$(./target/release/examples/kafka_floor "$BOOT" "floor.$source" "$ROWS")

  end_seq=$((10#${END_FILE##*.}))
  drained() {
    file_matches "$CKPT/checkpoint.json" '"file":[[:space:]]*"[^"]*\.([0-9]+)",[[:space:]]*"pos":[[:space:]]*([0-9]+)' || return 1
    local seq=$((10#${BASH_REMATCH[1]})) pos=${BASH_REMATCH[2]}
    (( seq > end_seq || (seq == end_seq && pos >= END_POS) ))
  }
  drain drained
  echo "bench: $LABEL: cdcd $cdcd_secs s (peak RSS $peak kB), decode floor $decode_secs s, produce floor $produce_secs s"
  results+=("$source|$LABEL|$decode_secs|$produce_secs|$cdcd_secs|$peak")
  if [ "$source" = mysql97 ]; then scripts/mysql.sh stop "$STATE/mysql97" >/dev/null; fi
done

python3 - "$ROWS" "${results[@]}" <<'PY'
import sys
rows = int(sys.argv[1])
runs = []
for line in sys.argv[2:]:
    source, label, dec, prod, cdcd, peak = line.strip().split("|")
    runs.append((source, label, float(dec), float(prod), float(cdcd), int(peak)))
print()
print("| binlog backlog of %d row changes | seconds | rows/s | cdcd vs this |" % rows)
print("|---|---:|---:|---:|")
for source, label, dec, prod, cdcd, peak in runs:
    d, p, c = rows / dec, rows / prod, rows / cdcd
    tool = "mariadb-binlog" if source == "mariadb" else "mysqlbinlog"
    print("| %s floor: %s --verbose (from the server) -> /dev/null | %.2f | %.0f | %.2fx |" % (label, tool, dec, d, c / d))
    print("| %s floor: librdkafka producing %d pre-built envelopes | %.2f | %.0f | %.2fx |" % (label, rows, prod, p, c / p))
    print("| %s cdcd: binlog -> envelope -> Kafka (acks=all, idempotent) | %.2f | %.0f | 1.00x |" % (label, cdcd, c))
print()
by = {r[0]: r for r in runs}
for source, label, dec, prod, cdcd, peak in runs:
    c, p = rows / cdcd, rows / prod
    print("%s: cdcd peak RSS (VmHWM): %.1f MB" % (label, peak / 1024))
    print("summary|%s backlog, %s rows|%.0f rows/s|librdkafka producing pre-built envelopes|%.0f rows/s|%.2fx|%.1f MB" % (
        label, "{:,}".format(rows), c, p, c / p, peak / 1024))
    print("targets (issue 10, %s): >= 500,000 rows/s: %s; >= 0.6x the produce floor: %s; peak RSS < 32 MB: %s" % (
        label, "PASS" if c >= 500000 else "FAIL", "PASS" if c / p >= 0.6 else "FAIL", "PASS" if peak < 32 * 1024 else "FAIL"))
if "mariadb" in by and "mysql97" in by:
    ratio = by["mariadb"][4] / by["mysql97"][4]
    print("target (issue 21): MySQL 9.7 drain >= 0.8x MariaDB's in this run: %.2fx %s" % (ratio, "PASS" if ratio >= 0.8 else "FAIL"))
PY
