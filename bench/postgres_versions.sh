#!/usr/bin/env bash
# Benchmark: the PostgreSQL backlog drain (bench/postgres_backlog.sh) and snapshot
# (bench/snapshot.sh, PostgreSQL only, no Debezium) on every major, 14 to 18, one after the
# other. Each run measures its own server's floors (server-side decode, pg_recvlogical and the
# walsender floor for the backlog; COPY for the snapshot) with that major's own client programs,
# so every ratio compares cdcd with what that version itself can do on this machine. Prints one
# table; each run's full output is in $OUT.
#   MAJORS (default "14 15 16 17 18"), BACKLOG_ROWS (default 500,000 in transactions of 1,000),
#   SNAPSHOT_ROWS (default 1,000,000). About 2 minutes per major.
set -euo pipefail
cd "$(dirname "$0")/.."
MAJORS=${MAJORS:-"14 15 16 17 18"}
BACKLOG_ROWS=${BACKLOG_ROWS:-500000}
SNAPSHOT_ROWS=${SNAPSHOT_ROWS:-1000000}
OUT=${OUT:-/tmp/cdcd-bench-pg-versions}
mkdir -p "$OUT"
for major in $MAJORS; do
  [ "$major" = 15 ] || scripts/pg-install.sh "$major" > /dev/null
  echo "bench/postgres_versions.sh: PostgreSQL $major backlog ..." >&2
  PG_MAJOR=$major ROWS=$BACKLOG_ROWS STATE=/tmp/cdcd-bench-pg$major PORT=$((26000 + major)) \
    bash bench/postgres_backlog.sh > "$OUT/backlog-$major.log" 2>&1 \
    || { tail -20 "$OUT/backlog-$major.log" >&2; exit 1; }
  scripts/pg.sh stop "/tmp/cdcd-bench-pg$major/pg" > /dev/null 2>&1 || true
  echo "bench/postgres_versions.sh: PostgreSQL $major snapshot ..." >&2
  PG_MAJOR=$major ROWS=$SNAPSHOT_ROWS STATE=/tmp/cdcd-bench-snapshot-pg$major PG_PORT=$((26100 + major)) \
    SOURCES=postgres DEBEZIUM=0 bash bench/snapshot.sh > "$OUT/snapshot-$major.log" 2>&1 \
    || { tail -20 "$OUT/snapshot-$major.log" >&2; exit 1; }
done

BACKLOG_ROWS=$BACKLOG_ROWS SNAPSHOT_ROWS=$SNAPSHOT_ROWS python3 - "$OUT" $MAJORS <<'PY'
import os, re, sys
out, majors = sys.argv[1], sys.argv[2:]
print()
print("| PostgreSQL | backlog: cdcd, TCP | Unix socket | server decode floor | pg_recvlogical floor (TCP) | cdcd / server decode (TCP) | snapshot: cdcd | COPY floor | cdcd / floor | peak RSS (backlog, snapshot) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for m in majors:
    backlog = [l.split("|") for l in open("%s/backlog-%s.log" % (out, m)) if l.startswith("summary|")]
    snap = [l.split("|") for l in open("%s/snapshot-%s.log" % (out, m)) if l.startswith("summary|")]
    tcp = next(b for b in backlog if b[1].endswith("TCP"))
    unix = next(b for b in backlog if b[1].endswith("Unix socket"))
    version = tcp[1].split()[1]
    recv = re.search(r"pg_recvlogical ([0-9]+)", tcp[3]).group(1)
    s = snap[0]
    print("| %s | %s | %s | %s | %s rows/s | %s | %s | %s | %s | %s, %s |" % (
        version, tcp[2], unix[2], tcp[4], "{:,}".format(int(recv)), tcp[5], s[2], s[4], s[5], tcp[6].strip(), s[6].strip()))
print()
print("backlog: %s rows in transactions of 1,000 into cdcd-mock-broker (acks=all, idempotent); snapshot: %s rows; 2 cores, one run per major" % (
    "{:,}".format(int(os.environ["BACKLOG_ROWS"])), "{:,}".format(int(os.environ["SNAPSHOT_ROWS"]))))
PY
