#!/usr/bin/env bash
# Starts a throwaway MariaDB for tests and demos, as a binlog source:
#   scripts/mariadb.sh start DIR PORT [SERVER_ID]  -> install (first time) and start
#   scripts/mariadb.sh stop DIR
# Binlog on, ROW format, FULL row image and FULL row metadata, GTIDs (MariaDB always has them).
# Users: root (socket only), cdcd/cdcd over TCP with replication privileges, and cdcd_watch/cdcd
# (PROCESS only) for tests that watch the server's open transactions.
# With MARIADB_TLS_DIR set (server.pem, server.key, ca.pem from tests/support/make_certs.sh) the
# server offers TLS and listens on 127.0.0.1 and 127.0.0.2; users cdcd_tls/cdcd (REQUIRE SSL)
# and cdcd_x509/cdcd (REQUIRE X509, a client certificate signed by the CA) are added.
set -euo pipefail
cmd=$1; dir=$2
case "$cmd" in
start)
  port=$3; server_id=${4:-1}
  bind=127.0.0.1; [ -n "${MARIADB_TLS_DIR:-}" ] && bind=127.0.0.1,127.0.0.2
  mkdir -p "$dir"
  cat > "$dir/my.cnf" <<CNF
[mariadbd]
datadir = $dir/data
socket = $dir/mysql.sock
pid-file = $dir/mariadbd.pid
port = $port
bind-address = $bind
server-id = $server_id
log-bin = $dir/data/binlog
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
max_binlog_size = 64M
innodb_buffer_pool_size = 256M
innodb_flush_log_at_trx_commit = 2
sync_binlog = 0
skip-name-resolve
log-error = $dir/error.log
CNF
  if [ -n "${MARIADB_TLS_DIR:-}" ]; then
    cat >> "$dir/my.cnf" <<CNF
ssl-ca = $MARIADB_TLS_DIR/ca.pem
ssl-cert = $MARIADB_TLS_DIR/server.pem
ssl-key = $MARIADB_TLS_DIR/server.key
CNF
  fi
  run_as=(); [ "$(id -u)" = 0 ] && run_as=(--user=root)
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --defaults-file="$dir/my.cnf" "${run_as[@]}" --auth-root-authentication-method=socket >/dev/null
  fi
  if ! mariadb-admin --socket="$dir/mysql.sock" -uroot ping >/dev/null 2>&1; then
    (mariadbd --defaults-file="$dir/my.cnf" "${run_as[@]}" >/dev/null 2>&1 &)
    for _ in $(seq 100); do mariadb-admin --socket="$dir/mysql.sock" -uroot ping >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  mariadb --socket="$dir/mysql.sock" -uroot -e "
    CREATE USER IF NOT EXISTS 'cdcd'@'%' IDENTIFIED BY 'cdcd';
    GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, BINLOG ADMIN, CREATE, DROP, INSERT, UPDATE, DELETE, ALTER, INDEX ON *.* TO 'cdcd'@'%';
    CREATE USER IF NOT EXISTS 'cdcd_watch'@'%' IDENTIFIED BY 'cdcd';
    GRANT PROCESS ON *.* TO 'cdcd_watch'@'%';"
  if [ -n "${MARIADB_TLS_DIR:-}" ]; then
    mariadb --socket="$dir/mysql.sock" -uroot -e "
      CREATE USER IF NOT EXISTS 'cdcd_tls'@'%' IDENTIFIED BY 'cdcd' REQUIRE SSL;
      CREATE USER IF NOT EXISTS 'cdcd_x509'@'%' IDENTIFIED BY 'cdcd' REQUIRE X509;
      GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO 'cdcd_tls'@'%', 'cdcd_x509'@'%';"
  fi
  echo "mysql://cdcd:cdcd@127.0.0.1:$port"
  ;;
stop)
  mariadb-admin --socket="$dir/mysql.sock" -uroot shutdown >/dev/null 2>&1 || true
  ;;
*) echo "usage: $0 start DIR PORT [SERVER_ID] | stop DIR" >&2; exit 2 ;;
esac
