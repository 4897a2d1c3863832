#!/usr/bin/env bash
# Starts a throwaway Oracle MySQL 9.7 for tests, as a binlog source:
#   scripts/mysql.sh start DIR PORT [SERVER_ID]  -> install (first time) and start; prints the URL
#   scripts/mysql.sh stop DIR
# Debian 12 has no MySQL 8/9 package and sid's mysql-server-core needs a newer libc, so the
# server runs in a minimal Debian sid chroot (debootstrap, about 800 MB), made once and cached in
# ${CDCD_CACHE:-~/.cache/cdcd}/mysql-sid. Its data lives inside the chroot, one directory per
# port; DIR holds the pid file and a link to the error log.
# Binlog on, ROW format, FULL row image and metadata, GTIDs on. MySQL 9 has no
# mysql_native_password: user cdcd/cdcd is caching_sha2_password (clients use TLS or the
# server's RSA key). SHOW MASTER STATUS is gone since 8.4: SHOW BINARY LOG STATUS.
# With MYSQL_TLS_DIR set (server.pem, server.key, ca.pem from tests/support/make_certs.sh) the
# server uses that certificate and listens on 127.0.0.1 and 127.0.0.2; users cdcd_tls/cdcd
# (REQUIRE SSL) and cdcd_x509/cdcd (REQUIRE X509) are added.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
ROOT=${CDCD_MYSQL_ROOT:-${CDCD_CACHE:-$HOME/.cache/cdcd}/mysql-sid}
say() { echo "mysql.sh: $*" >&2; }

install_chroot() {
  [ -x "$ROOT/usr/sbin/mysqld" ] && return
  command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  say "making a Debian sid chroot for MySQL 9.7 in $ROOT (once; about a minute and 800 MB)"
  rm -rf "$ROOT.tmp"; mkdir -p "$ROOT.tmp"
  debootstrap --variant=minbase sid "$ROOT.tmp" >"$ROOT.debootstrap.log" 2>&1 || {
    tail -5 "$ROOT.debootstrap.log" >&2; say "debootstrap failed (log: $ROOT.debootstrap.log)"; exit 1; }
  # The mirror's Release file can look expired against this machine's clock.
  chroot "$ROOT.tmp" apt-get -o Acquire::Check-Valid-Until=false update -qq >&2
  DEBIAN_FRONTEND=noninteractive chroot "$ROOT.tmp" apt-get install -y -qq --no-install-recommends \
    mysql-server-core mysql-client-core >&2
  chroot "$ROOT.tmp" apt-get clean
  rm -rf "$ROOT"; mv "$ROOT.tmp" "$ROOT"
}

sql() { chroot "$ROOT" mysql --no-defaults -uroot --socket="/run/mysqld/mysql-$port.sock" -e "$1"; }

case "$cmd" in
start)
  port=${3:?usage: $0 start DIR PORT [SERVER_ID]}; server_id=${4:-1}
  install_chroot
  mkdir -p "$dir" "$ROOT/run/mysqld" "$ROOT/var/log"
  data=/var/lib/mysql-$port
  log=/var/log/mysql-$port.log
  ln -sfn "$ROOT$log" "$dir/error.log"
  echo "$port" >"$dir/port"
  running=false
  if [ -f "$dir/mysqld.pid" ] && kill -0 "$(cat "$dir/mysqld.pid")" 2>/dev/null && sql "SELECT 1" >/dev/null 2>&1; then
    running=true # users and grants below are still brought up to date
  fi
  if ! $running; then
    if [ ! -d "$ROOT$data/mysql" ]; then
      rm -rf "${ROOT:?}$data"
      chroot "$ROOT" /usr/sbin/mysqld --no-defaults --initialize-insecure --user=root --datadir="$data" >"$ROOT$log" 2>&1
    fi
    bind=127.0.0.1; tls=()
    if [ -n "${MYSQL_TLS_DIR:-}" ]; then
      # The server sees only the chroot: its certificate is copied in.
      mkdir -p "$ROOT/etc/mysql-tls-$port"
      cp "$MYSQL_TLS_DIR"/{ca.pem,server.pem,server.key} "$ROOT/etc/mysql-tls-$port/"
      bind=127.0.0.1,127.0.0.2
      tls=(--ssl-ca="/etc/mysql-tls-$port/ca.pem" --ssl-cert="/etc/mysql-tls-$port/server.pem" --ssl-key="/etc/mysql-tls-$port/server.key")
    fi
    # --secure-file-priv must be set or the server refuses to start in the chroot.
    chroot "$ROOT" /usr/sbin/mysqld --no-defaults --user=root --datadir="$data" --bind-address="$bind" "${tls[@]}" \
      --port="$port" --socket="/run/mysqld/mysql-$port.sock" --mysqlx=OFF --secure-file-priv= \
      --server-id="$server_id" --log-bin=binlog --binlog-format=ROW --binlog-row-image=FULL \
      --binlog-row-metadata=FULL --gtid-mode=ON --enforce-gtid-consistency=ON \
      --character-set-server=utf8mb4 --innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=2 \
      --sync-binlog=0 --max-binlog-size=64M --log-bin-trust-function-creators=ON --performance-schema=OFF --skip-name-resolve \
      ${MYSQL_EXTRA_ARGS:-} >>"$ROOT$log" 2>&1 &
    echo $! >"$dir/mysqld.pid"
    for _ in $(seq 120); do
      sql "SELECT 1" >/dev/null 2>&1 && break
      kill -0 "$(cat "$dir/mysqld.pid")" 2>/dev/null || { tail -5 "$ROOT$log" >&2; say "mysqld exited (log: $ROOT$log)"; exit 1; }
      sleep 0.5
    done
    sql "SELECT 1" >/dev/null || { say "not ready after 60 s (log: $ROOT$log)"; exit 1; }
  fi
  sql "
    CREATE USER IF NOT EXISTS 'cdcd'@'%' IDENTIFIED WITH caching_sha2_password BY 'cdcd';
    GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, CREATE, DROP, INSERT,
      UPDATE, DELETE, ALTER, INDEX, PROCESS, TRIGGER, CREATE USER, REFERENCES ON *.* TO 'cdcd'@'%';
    GRANT BINLOG_ADMIN, XA_RECOVER_ADMIN, SYSTEM_VARIABLES_ADMIN, TRANSACTION_GTID_TAG ON *.* TO 'cdcd'@'%';"
  if [ -n "${MYSQL_TLS_DIR:-}" ]; then
    sql "
      CREATE USER IF NOT EXISTS 'cdcd_tls'@'%' IDENTIFIED BY 'cdcd' REQUIRE SSL;
      CREATE USER IF NOT EXISTS 'cdcd_x509'@'%' IDENTIFIED BY 'cdcd' REQUIRE X509;
      GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdcd_tls'@'%', 'cdcd_x509'@'%';"
  fi
  echo "mysql://cdcd:cdcd@127.0.0.1:$port"
  ;;
stop)
  if [ -f "$dir/mysqld.pid" ]; then
    pid=$(cat "$dir/mysqld.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$dir/mysqld.pid"
  fi
  ;;
*) echo "usage: $0 start DIR PORT [SERVER_ID] | stop DIR" >&2; exit 2 ;;
esac
