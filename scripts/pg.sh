#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 cluster for tests and demos.
#   scripts/pg.sh start DIR PORT [WAL_LEVEL]   -> initdb (first time) and start
#   scripts/pg.sh stop DIR
# Users: postgres (superuser) and cdcd (REPLICATION, CREATEDB), both with password "cdcd",
# scram-sha-256 over TCP on 127.0.0.1. PostgreSQL refuses to run as root, so as root the
# cluster runs as the `postgres` user.
# With PG_TLS_DIR set (server.pem, server.key, ca.pem from tests/support/make_certs.sh) the new
# cluster has ssl=on, listens on 127.0.0.1 and 127.0.0.2, and accepts TCP connections only over
# TLS (hostssl); user cdcd_cert logs in with a client certificate (CN=cdcd_cert) instead of a
# password.
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
cmd=$1; dir=$2
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
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
  as_pg psql -h "$dir" -p "$port" -U postgres -qtAc \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='cdcd') THEN CREATE ROLE cdcd LOGIN REPLICATION CREATEDB PASSWORD 'cdcd'; END IF;
     IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='cdcd_cert') THEN CREATE ROLE cdcd_cert LOGIN REPLICATION CREATEDB; END IF; END\$\$;" postgres
  echo "postgres://cdcd:cdcd@127.0.0.1:$port"
  ;;
stop)
  as_pg $BIN/pg_ctl -D "$dir" -m fast stop >/dev/null 2>&1 || true
  ;;
*) echo "usage: $0 start DIR PORT [WAL_LEVEL] | stop DIR" >&2; exit 2 ;;
esac
