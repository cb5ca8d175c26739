#!/usr/bin/env bash
# Builds the gateway as one static executable and lays out the image's root filesystem in OUT_DIR:
#   OUT_DIR/gateway                            the binary (glibc static-pie: no loader, no libraries)
#   OUT_DIR/etc/ssl/certs/ca-certificates.crt  CA roots for `rediss://` (rustls-native-certs)
#
# The Dockerfile's build stage runs this script, and scripts/image.sh runs it on the host: the
# same command, so the image built here without pulling anything holds what the Dockerfile's does.
#
#   scripts/build-static.sh OUT_DIR
#
# Static because the image is FROM scratch. The workspace uses rustls (ring) and no OpenSSL, so
# `-C target-feature=+crt-static` on the gnu target is all it takes; `--target` keeps that flag
# away from build scripts and proc macros (they run on the host and stay dynamic). glibc >= 2.34
# has its `files` and `dns` NSS modules inside libc, so name resolution works without libnss_*.so.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:?usage: $0 OUT_DIR}"
target="${GATEWAY_BUILD_TARGET:-$(rustc -vV | sed -n 's/^host: //p')}"
target_dir="${CARGO_TARGET_DIR:-target}"
ca_bundle=/etc/ssl/certs/ca-certificates.crt

log() { echo "build-static: $*" >&2; }

case "$target" in
  *-linux-gnu) ;;
  *) log "expected a *-linux-gnu target, got $target"; exit 1 ;;
esac
[ -r "$ca_bundle" ] || { log "missing $ca_bundle (Debian: apt-get install ca-certificates)"; exit 1; }
command -v readelf >/dev/null || { log "readelf is missing (Debian: apt-get install binutils)"; exit 1; }

log "cargo build --release --locked -p gateway --target $target (crt-static)"
RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=symbols \
  cargo build --release --locked -p gateway --target "$target"
bin="$target_dir/$target/release/gateway"

# Static means: no program interpreter and no shared library needed.
if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
  log "$bin asks for a dynamic loader: not static"; readelf -lW "$bin" | grep interpreter >&2; exit 1
fi
if readelf -dW "$bin" | grep -q '(NEEDED)'; then
  log "$bin needs shared libraries: not static"; readelf -dW "$bin" | grep NEEDED >&2; exit 1
fi

rm -rf "$out"
install -D -m 0755 "$bin" "$out/gateway"
install -D -m 0644 "$ca_bundle" "$out/etc/ssl/certs/ca-certificates.crt"
log "$out/gateway: static, $(du -h "$out/gateway" | cut -f1)"
