#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs dependencies, starts the servers the tests
# need (PostgreSQL 15 with wal_level=logical, a second one with wal_level=replica for the error
# tests, MariaDB 10.11 and Oracle MySQL 9.7 with binlog/ROW/GTID, Apache Kafka 2.3), then runs unit
# and integration tests.
# Other Kafka-protocol brokers are started by the tests themselves (cdcd-mock-broker, built from
# this repo; tansu).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
STATE=${CDCD_TEST_STATE:-/tmp/cdcd-test}
mkdir -p "$STATE"
[ "$(id -u)" = 0 ] && chmod 755 "$STATE"
export CDCD_TEST_PG_URL=$(scripts/pg.sh start "$STATE/pg" 54329 logical)
export CDCD_TEST_PG_REPLICA_URL=$(scripts/pg.sh start "$STATE/pg-replica" 54330 replica)
export CDCD_TEST_MYSQL_URL=$(scripts/mariadb.sh start "$STATE/mariadb" 33061)
trap 'scripts/pg.sh stop "$STATE/pg"; scripts/pg.sh stop "$STATE/pg-replica"; scripts/mariadb.sh stop "$STATE/mariadb"; scripts/mysql.sh stop "$STATE/mysql97"; scripts/kafka.sh stop "$STATE/kafka"' EXIT
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
