#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs dependencies, starts the servers the tests
# need (PostgreSQL 15 with wal_level=logical, a second one with wal_level=replica for the error
# tests, MariaDB 10.11 and Oracle MySQL 9.7 with binlog/ROW/GTID, Apache Kafka 2.3), then runs unit
# and integration tests. Then the PostgreSQL conformance subset on every other major
# (CDCD_TEST_PG_MATRIX, default "14 16 17 18"; empty skips it): streaming of every type, snapshots
# and incremental snapshots, keyless tables, TRUNCATE, kill loops, slot errors, TLS, failover slots,
# exactly-once takeover of a frozen leader, the file-to-Kafka store switch, and the event and
# column options.
# Other Kafka-protocol brokers are started by the tests themselves (cdcd-mock-broker, built from
# this repo; tansu).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# PostgreSQL 14, 16, 17, 18 for the conformance subset and the failover tests (cached).
for major in 14 16 17 18; do scripts/pg-install.sh "$major" >/dev/null; done
STATE=${CDCD_TEST_STATE:-/tmp/cdcd-test}
mkdir -p "$STATE"
[ "$(id -u)" = 0 ] && chmod 755 "$STATE"
export CDCD_TEST_PG_URL=$(scripts/pg.sh start "$STATE/pg" 54329 logical)
export CDCD_TEST_PG_REPLICA_URL=$(scripts/pg.sh start "$STATE/pg-replica" 54330 replica)
export CDCD_TEST_MYSQL_URL=$(scripts/mariadb.sh start "$STATE/mariadb" 33061)
trap 'scripts/pg.sh stop "$STATE/pg"; scripts/pg.sh stop "$STATE/pg-replica"; scripts/mariadb.sh stop "$STATE/mariadb"; scripts/mysql.sh stop "$STATE/mysql97"; scripts/kafka.sh stop "$STATE/kafka"; for m in 14 16 17 18; do [ ! -d "$STATE/pg$m" ] || scripts/pg.sh stop "$STATE/pg$m"; done' EXIT
# Oracle MySQL 9.7 (Debian sid in a chroot, cached in ~/.cache/cdcd/mysql-sid).
export CDCD_TEST_MYSQL97_URL=$(scripts/mysql.sh start "$STATE/mysql97" 23306)
# A real Apache Kafka 2.3 (PLAINTEXT, SASL/SCRAM, ZooKeeper for making users and topics).
export CDCD_TEST_KAFKA=$(scripts/kafka.sh start "$STATE/kafka" 19092 19093 12181)
export CDCD_TEST_KAFKA_SASL=127.0.0.1:19093 CDCD_TEST_KAFKA_ZK=127.0.0.1:12181
export CDCD_TEST_KAFKA_HOME=$(scripts/kafka.sh home)
echo "test: PostgreSQL at $CDCD_TEST_PG_URL (logical) and $CDCD_TEST_PG_REPLICA_URL (replica); MariaDB at $CDCD_TEST_MYSQL_URL; MySQL 9.7 at $CDCD_TEST_MYSQL97_URL; Apache Kafka 2.3 at $CDCD_TEST_KAFKA (SASL $CDCD_TEST_KAFKA_SASL)"
# A fresh checkout gains nothing from incremental compilation, and its cache is gigabytes.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo build --bins --quiet
cargo test --no-fail-fast -- --test-threads=4 "$@"
[ $# -eq 0 ] || exit 0

# The conformance subset per PostgreSQL major (PG_MAJOR: scripts/pg.sh and the tests' own
# servers use that version too). Ports below the ephemeral range.
subset=(--test postgres_stream --test debezium_encoding --test keyless_tables --test incremental_snapshots
  --test crash_loops --test postgres_resilience --test postgres_tls --test postgres_versions --test postgres_standby
  --test exactly_once --test event_options)
# The exactly-once kill loops take minutes each; their frozen-leader and store-switch tests run.
skip=(--skip mariadb --skip mysql97 --skip json_logs --skip wal_level_not_logical --skip broker_outage
  --skip two_processes_kill_9)
failed=()
for major in ${CDCD_TEST_PG_MATRIX-14 16 17 18}; do
  url=$(PG_MAJOR=$major scripts/pg.sh start "$STATE/pg$major" $((25400 + major)) logical)
  echo "test: PostgreSQL $major conformance subset at $url"
  if ! PG_MAJOR=$major CDCD_TEST_PG_URL=$url cargo test --no-fail-fast "${subset[@]}" -- --test-threads=4 "${skip[@]}"; then
    failed+=("$major")
  fi
  scripts/pg.sh stop "$STATE/pg$major"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "test: the PostgreSQL conformance subset failed on: ${failed[*]}" >&2
  exit 1
fi
