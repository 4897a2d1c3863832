#!/usr/bin/env bash
# Runs every benchmark once, one after the other (never two at once: they share 2 cores), and
# prints one table: what cdcd did, its floor, the ratio and cdcd's peak RSS, followed by each
# benchmark's own table and target verdicts. Logs go to $OUT.
#   backlog drain: PostgreSQL (TCP and Unix socket), MariaDB, one 3,000,000-row transaction
#   latency      : bench/latency.sh, both sources, 200 / 1,000 / 5,000 commits/s
#   snapshot     : bench/snapshot.sh without Debezium (SNAPSHOT=0 skips it)
#   formats      : bench/formats.sh, Avro through a real Schema Registry (FORMATS=0 skips it)
#   exactly-once : bench/exactly_once.sh, its cost next to at-least-once on a real Kafka 2.3
#                  (EXACTLY_ONCE=0 skips it)
# About 15 minutes with everything on.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/cdcd-bench-run}
mkdir -p "$OUT"
cargo build --release --bins --examples --quiet

run() { # run NAME COMMAND...: its output goes to $OUT/NAME.log; a failure stops everything
  local name=$1; shift
  echo "bench/run.sh: $name ..." >&2
  local t0=$SECONDS
  if ! "$@" > "$OUT/$name.log" 2>&1; then
    echo "bench/run.sh: $name failed; the end of $OUT/$name.log:" >&2
    tail -20 "$OUT/$name.log" >&2
    exit 1
  fi
  echo "bench/run.sh: $name done in $((SECONDS - t0)) s" >&2
  ran+=("$name")
}
ran=()
run postgres-backlog bash bench/postgres_backlog.sh
run mariadb-backlog bash bench/mysql_backlog.sh
run postgres-one-transaction env ROWS=3000000 TXN_ROWS=3000000 STATE=/tmp/cdcd-bench-onetxn PORT=54342 \
  bash bench/postgres_backlog.sh
run latency env SECS="${LATENCY_SECS:-20}" bash bench/latency.sh
[ "${SNAPSHOT:-1}" = 1 ] && run snapshot env DEBEZIUM=0 bash bench/snapshot.sh
[ "${FORMATS:-1}" = 1 ] && run formats bash bench/formats.sh
[ "${EXACTLY_ONCE:-1}" = 1 ] && run exactly-once bash bench/exactly_once.sh

echo
echo "| benchmark | cdcd | floor | floor result | cdcd / floor | cdcd peak RSS |"
echo "|---|---:|---|---:|---:|---:|"
for name in "${ran[@]}"; do
  grep -h '^summary|' "$OUT/$name.log" | cut -d'|' -f2- | sed 's/|/ | /g; s/^/| /; s/$/ |/'
done
for name in "${ran[@]}"; do
  echo
  echo "## $name"
  grep -E '^\||^targets|^target:' "$OUT/$name.log" || true
done
