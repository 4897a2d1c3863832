#!/usr/bin/env bash
# Builds the container image from ./Dockerfile with podman and runs tests/container.rs against
# it: cdcd in the container streams from the test PostgreSQL into the test broker with its
# checkpoints in a named volume, is stopped with SIGTERM, started again, and nothing is lost.
#
# No image registry is reachable here, so the two base images the Dockerfile takes as build
# arguments are made locally: a Debian root file system from debootstrap (the same mirror and
# release apt uses), imported with `podman import`, and the same with the host's Rust toolchain
# copied in, standing in for docker.io/library/rust. On a machine with a registry, plain
# `podman build .` / `docker build .` uses the real ones.
#
# Needs root (podman, debootstrap). Run by .ci/run after scripts/test.sh, which starts the
# database servers this test uses; on its own: scripts/test.sh first, or
#   scripts/container_test.sh        (starts the servers itself when CDCD_TEST_PG_URL is unset)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${CDCD_CONTAINER_WORK:-/var/tmp/cdcd-container}
IMAGE=${CDCD_CONTAINER_IMAGE:-localhost/cdcd:test}
# crun fails in this sandbox (cgroup v1, no CAP_SYS_RESOURCE): runc and lowered ulimits.
export CONTAINERS_CONF=$ROOT/deploy/container/containers.conf
mkdir -p "$WORK"

need=()
for tool in podman buildah runc debootstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "container: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

. /etc/os-release
SUITE=${VERSION_CODENAME:-bookworm}
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
BASE=localhost/cdcd-base/debian:$SUITE
RUST=localhost/cdcd-base/rust:$SUITE

t0=$(date +%s)
if ! podman image exists "$BASE"; then
  echo "container: debootstrap $SUITE from $MIRROR (once; cached as $BASE)"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase "$SUITE" "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; exit 1; }
  # Like the official slim images: no apt lists, caches, manuals, docs or translations, now or
  # from packages installed later.
  cat >"$WORK/rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  cat >"$WORK/rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
  rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/"*.bin "$WORK/rootfs/var/cache/apt/archives/"*.deb
  find "$WORK/rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$WORK/rootfs/usr/share/man/"* "$WORK/rootfs/usr/share/info/"* "$WORK/rootfs/usr/share/locale/"*
  tar -C "$WORK/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$WORK/rootfs"
fi
if ! podman image exists "$RUST"; then
  echo "container: $RUST from $BASE and the host's Rust toolchain (once)"
  sysroot=$(rustc --print sysroot)
  ctx="$WORK/rust-context"
  rm -rf "$ctx" && mkdir -p "$ctx/toolchain/bin"
  cp "$sysroot/bin/rustc" "$sysroot/bin/cargo" "$ctx/toolchain/bin/"
  cp -a "$sysroot/lib" "$ctx/toolchain/lib"
  # Certificate authorities this machine added to its own trust store (e.g. an HTTPS proxy's)
  # so cargo in the build stage reaches crates.io the way cargo on the host does.
  mkdir -p "$ctx/local-ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/local-ca/" 2>/dev/null || true
  cat >"$ctx/Containerfile" <<EOF
FROM $BASE
COPY toolchain /usr/local
COPY local-ca /usr/local/share/ca-certificates
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \
 && update-ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
  podman build --network host -q -t "$RUST" "$ctx" >/dev/null
  rm -rf "$ctx"
fi
t1=$(date +%s)

echo "container: building $IMAGE from ./Dockerfile"
podman build --format docker --network host \
  --build-arg BUILD_IMAGE="$RUST" --build-arg RUNTIME_IMAGE="$BASE" \
  -t "$IMAGE" . >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
t2=$(date +%s)
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
echo "container: image $IMAGE, $((size / 1000000)) MB; base images $((t1 - t0)) s, image build $((t2 - t1)) s"

if [ -z "${CDCD_TEST_PG_URL:-}" ]; then
  STATE=${CDCD_TEST_STATE:-/tmp/cdcd-test}
  CDCD_TEST_PG_URL=$(scripts/pg.sh start "$STATE/pg" 54329 logical)
  export CDCD_TEST_PG_URL
  trap 'scripts/pg.sh stop "$STATE/pg" || true' EXIT
fi
CDCD_CONTAINER_IMAGE=$IMAGE cargo test --test container -- --ignored --nocapture
