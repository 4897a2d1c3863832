#!/usr/bin/env bash
# Start a Karapace 6.2.0 Schema Registry (Confluent-compatible REST API) in the background,
# for cdcd's Avro tests. Karapace is not on PyPI; its source is found, in this order:
#   1. $KARAPACE_SRC (a checkout of Karapace's tag 6.2.0: holds src/karapace and requirements/);
#   2. ../shared/schema-registry/karapace beside this repository (our machines, offline);
#   3. ~/.cache/cdcd/karapace-6.2.0, cloned once from Karapace's public repository
#      (https://github.com/Aiven-Open/karapace, tag 6.2.0; needs git and access to GitHub).
#
# usage: start.sh BOOTSTRAP PORT [STATE_DIR]
#   BOOTSTRAP  Kafka bootstrap address, e.g. 127.0.0.1:9092
#   PORT       HTTP port; the registry listens on 127.0.0.1:PORT
#   STATE_DIR  holds karapace.pid, karapace.log, pip.log and (by default) the
#              virtualenv; default: ${TMPDIR:-/tmp}/schema-registry
#
# On success prints two lines on stdout:
#   schema-registry=http://127.0.0.1:PORT
#   pid=PID
# Progress and errors go to stderr. Running it again while the registry from
# STATE_DIR is up on PORT just prints the same two lines.
#
# Environment (all optional):
#   SR_VENV           virtualenv location (default STATE_DIR/venv). Point several
#                     state dirs at one venv to install the dependencies only once.
#   SR_PYTHON         Python 3.12 (3.13/3.14 accepted) used to create the venv
#   SR_READY_TIMEOUT  seconds to wait for the registry to be ready (default 60)
#   CC                C compiler for the protopacelib stub (default cc, then gcc)
#   KARAPACE_*        any Karapace setting, e.g. KARAPACE_TOPIC_NAME (default
#                     _schemas), KARAPACE_GROUP_ID, KARAPACE_COMPATIBILITY
#                     (default BACKWARD), KARAPACE_LOG_LEVEL (default here: INFO)
set -euo pipefail

AVRO_REQUIREMENT="avro==1.12.2"

die() { echo "start.sh: error: $*" >&2; exit 1; }
say() { echo "start.sh: $*" >&2; }

[ $# -ge 2 ] && [ $# -le 3 ] || die "usage: start.sh BOOTSTRAP PORT [STATE_DIR]"
BOOTSTRAP=$1
PORT=$2
case "$PORT" in '' | *[!0-9]*) die "PORT must be a number, got '$PORT'" ;; esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KARAPACE_TAG=6.2.0
CACHED="${CDCD_CACHE:-$HOME/.cache/cdcd}/karapace-$KARAPACE_TAG"
SIBLING="$HERE/../../../shared/schema-registry/karapace"
if [ -n "${KARAPACE_SRC:-}" ]; then
    KARAPACE=$KARAPACE_SRC
elif [ -d "$SIBLING/src/karapace" ]; then
    KARAPACE=$SIBLING
else
    KARAPACE=$CACHED
    if [ ! -d "$KARAPACE/src/karapace" ]; then
        say "Karapace is not on PyPI and not beside this repository: cloning its tag $KARAPACE_TAG from GitHub into $KARAPACE (once)"
        command -v git >/dev/null || die "git is needed to fetch Karapace $KARAPACE_TAG (apt-get install git), or set KARAPACE_SRC to a checkout of it"
        rm -rf "$KARAPACE.tmp"
        git clone --quiet --depth 1 --branch "$KARAPACE_TAG" https://github.com/Aiven-Open/karapace "$KARAPACE.tmp" ||
            die "could not clone https://github.com/Aiven-Open/karapace (tag $KARAPACE_TAG). Without network access to GitHub, copy a checkout of that tag here or set KARAPACE_SRC to one"
        # Upstream generates version.py with setuptools-scm when it builds a package.
        echo "__version__ = \"$KARAPACE_TAG\"" >"$KARAPACE.tmp/src/karapace/version.py"
        mv "$KARAPACE.tmp" "$KARAPACE"
    fi
fi
SRC="$KARAPACE/src"
REQUIREMENTS="$KARAPACE/requirements/requirements.txt"
STUB="$HERE/protopacelib_stub.c"
[ -d "$SRC/karapace" ] || die "Karapace source tree not found at $SRC"

STATE_DIR=${3:-${TMPDIR:-/tmp}/schema-registry}
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
VENV=${SR_VENV:-$STATE_DIR/venv}
VENV=${VENV%/}
PIDFILE="$STATE_DIR/karapace.pid"
PORTFILE="$STATE_DIR/karapace.port"
LOG="$STATE_DIR/karapace.log"
PIPLOG="$STATE_DIR/pip.log"
URL="http://127.0.0.1:$PORT"
READY_TIMEOUT=${SR_READY_TIMEOUT:-60}

is_karapace_pid() { # PID alive and really a karapace process (guards against PID reuse)
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    if [ -r "/proc/$pid/cmdline" ]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-m karapace" || return 1
    fi
    return 0
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Poll until the registry is ready to serve reads and writes (or the process dies).
wait_ready() { # PID TIMEOUT
    "$VENV/bin/python" - "$URL" "$1" "$2" <<'PY'
import json, os, sys, time, urllib.request
url, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(2)
    try:
        with urllib.request.urlopen(url + "/_health", timeout=2) as r:
            st = json.load(r).get("status", {})
        # Writable: this instance is the primary, or (not primary-eligible) it knows the primary to forward to.
        writable = st.get("schema_registry_is_primary") or (
            st.get("schema_registry_is_primary_eligible") is False and st.get("schema_registry_primary_url"))
        if st.get("schema_registry_ready") and writable:
            with urllib.request.urlopen(url + "/subjects", timeout=2) as r:
                if r.status == 200:
                    sys.exit(0)
    except Exception:
        pass
    time.sleep(0.5)
sys.exit(1)
PY
}

report() { echo "schema-registry=$URL"; echo "pid=$1"; }

# ---------------------------------------------------------------- already running?
if [ -f "$PIDFILE" ]; then
    OLD_PID=$(cat "$PIDFILE" 2>/dev/null || true)
    if is_karapace_pid "$OLD_PID"; then
        OLD_PORT=$(cat "$PORTFILE" 2>/dev/null || true)
        [ "$OLD_PORT" = "$PORT" ] ||
            die "Karapace (pid $OLD_PID) from $STATE_DIR already runs on port ${OLD_PORT:-?}; run stop.sh $STATE_DIR first or use another STATE_DIR"
        if [ -x "$VENV/bin/python" ] && wait_ready "$OLD_PID" "$READY_TIMEOUT"; then
            say "already running"
            report "$OLD_PID"
            exit 0
        fi
        die "Karapace (pid $OLD_PID) from $STATE_DIR is running but not ready on $URL; see $LOG"
    fi
    rm -f "$PIDFILE" "$PORTFILE"
fi
port_in_use "$PORT" && die "port $PORT on 127.0.0.1 is already in use"

# ---------------------------------------------------------------- python
find_python() {
    local c r p
    local candidates=() roots=()
    if [ -n "${SR_PYTHON:-}" ]; then
        candidates=("$SR_PYTHON")
    else
        if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root 2>/dev/null || true)"); fi
        roots+=("${PYENV_ROOT:-$HOME/.pyenv}")
        candidates+=(python3.12)
        for r in "${roots[@]}"; do
            for p in "$r"/versions/3.12*/bin/python3.12; do [ -x "$p" ] && candidates+=("$p"); done
        done
        candidates+=(python3.13 python3.14)
        for r in "${roots[@]}"; do
            for p in "$r"/versions/3.1[34]*/bin/python3; do [ -x "$p" ] && candidates+=("$p"); done
        done
        candidates+=(python3)
    fi
    for c in "${candidates[@]}"; do
        [ -n "$c" ] || continue
        if "$c" -c 'import sys; sys.exit(0 if (3, 12) <= sys.version_info[:2] < (3, 15) else 1)' >/dev/null 2>&1; then
            "$c" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------- venv (created once)
STAMP_FILE="$VENV/.schema-registry-stamp"
STAMP=$( { grep -v '^avro @' "$REQUIREMENTS"; echo "$AVRO_REQUIREMENT"; cat "$STUB"; } | sha256sum | cut -d' ' -f1)

venv_ok() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c '' 2>/dev/null && [ "$(cat "$STAMP_FILE" 2>/dev/null)" = "$STAMP" ]; }

setup_venv() {
    local py cc ext platlib t0=$SECONDS
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
        [ -z "${SR_PYTHON:-}" ] || find_python >/dev/null ||
            die "SR_PYTHON=$SR_PYTHON is not a working Python 3.12 (3.13/3.14 also accepted)"
        py=$(find_python) || die "no Python 3.12 found (Karapace 6.2.0 needs Python >= 3.12, < 3.15).
  Install one (e.g. 'pyenv install 3.12', or the python3.12 + python3.12-venv packages)
  or set SR_PYTHON=/path/to/python3.12"
        say "creating virtualenv $VENV with $py"
        rm -rf "$VENV"
        "$py" -m venv "$VENV" ||
            die "'$py -m venv' failed (on Debian/Ubuntu install the python3.12-venv package)"
    fi
    say "installing Python requirements into $VENV (first run takes a minute or two; log: $PIPLOG)"
    grep -v '^avro @' "$REQUIREMENTS" >"$VENV/requirements.txt"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check \
        -r "$VENV/requirements.txt" "$AVRO_REQUIREMENT" >"$PIPLOG" 2>&1; then
        tail -n 30 "$PIPLOG" >&2
        die "pip install failed; full log: $PIPLOG"
    fi

    cc=${CC:-}
    if [ -z "$cc" ]; then
        for c in cc gcc clang; do command -v "$c" >/dev/null 2>&1 && { cc=$c; break; }; done
    fi
    [ -n "$cc" ] || die "no C compiler found (install gcc, or set CC) - needed for the protopacelib stub"
    ext=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
    platlib=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("platlib"))')
    "$cc" -shared -fPIC -O2 -o "$platlib/protopacelib$ext" "$STUB" || die "compiling $STUB failed"

    PYTHONPATH="$SRC" PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -c 'import avro, karapace.core.protobuf.protopace' ||
        die "the virtualenv $VENV cannot import Karapace"
    echo "$STAMP" >"$STAMP_FILE"
    say "virtualenv ready in $((SECONDS - t0)) s"
}

if ! venv_ok; then
    mkdir -p "$(dirname "$VENV")"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$VENV.lock"
        flock 9
    fi
    venv_ok || setup_venv
    if command -v flock >/dev/null 2>&1; then exec 9>&-; fi
fi

# ---------------------------------------------------------------- launch
export KARAPACE_BOOTSTRAP_URI="$BOOTSTRAP"
export KARAPACE_HOST=127.0.0.1
export KARAPACE_PORT="$PORT"
export KARAPACE_ADVERTISED_HOSTNAME="${KARAPACE_ADVERTISED_HOSTNAME:-127.0.0.1}"
export KARAPACE_ADVERTISED_PORT="${KARAPACE_ADVERTISED_PORT:-$PORT}"
export KARAPACE_LOG_LEVEL="${KARAPACE_LOG_LEVEL:-INFO}"
# Upstream waits 5 s after winning the primary election before accepting writes, to
# protect against a previous primary's in-flight writes; a lone test instance has none.
export KARAPACE_WAITING_TIME_BEFORE_ACTING_AS_MASTER_MS="${KARAPACE_WAITING_TIME_BEFORE_ACTING_AS_MASTER_MS:-0}"
export PYTHONUNBUFFERED=1
# Cache bytecode under STATE_DIR (keeps the source tree clean, makes restarts faster).
export PYTHONPYCACHEPREFIX="$STATE_DIR/pycache"
unset PYTHONDONTWRITEBYTECODE
export PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}"

echo "=== $(date -u '+%Y-%m-%dT%H:%M:%SZ') start.sh $BOOTSTRAP $PORT" >>"$LOG"
cd "$STATE_DIR"
nohup "$VENV/bin/python" -m karapace >>"$LOG" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$PIDFILE"
echo "$PORT" >"$PORTFILE"

cleanup_on_failure() {
    if kill -0 "$PID" 2>/dev/null; then kill "$PID" 2>/dev/null || true; fi
    rm -f "$PIDFILE" "$PORTFILE"
}
trap 'cleanup_on_failure; exit 130' INT TERM

say "started Karapace (pid $PID) against Kafka at $BOOTSTRAP; waiting up to ${READY_TIMEOUT}s (log: $LOG)"
t0=$SECONDS
rc=0
wait_ready "$PID" "$READY_TIMEOUT" || rc=$?
trap - INT TERM
if [ "$rc" -ne 0 ]; then
    if [ "$rc" -eq 2 ]; then
        msg="Karapace exited during startup"
    else
        msg="Karapace not ready after ${READY_TIMEOUT}s (is Kafka reachable at $BOOTSTRAP?)"
    fi
    cleanup_on_failure
    tail -n 30 "$LOG" >&2
    die "$msg; full log: $LOG"
fi
say "ready after $((SECONDS - t0)) s"
report "$PID"
