#!/usr/bin/env bash
# Builds the ig container image from scratch, pulling nothing: a rootfs holding the ig binary
# (the built-in gadgets are embedded in it) and exactly the shared libraries `ldd` lists for it
# (the loader included), imported with `docker import`. Entrypoint ig; HOST_ROOT=/host.
#
# Usage: packaging/image/build.sh [BINARY] [TAG]
#   BINARY  the ig to put in the image (default target/release/ig)
#   TAG     the image's name (default ig:dev)
# The binary is copied with its debug sections stripped (when `strip` is there). The image a
# previous build gave TAG is removed unless a container still uses it. Prints the image id.
set -euo pipefail

cd "$(dirname "$0")/../.."
binary="${1:-target/release/ig}"
tag="${2:-ig:dev}"

log() { echo "packaging/image: $*" >&2; }
die() { log "$*"; exit 1; }

[[ -x "$binary" ]] || die "no ig binary at $binary (build it: cargo build --release)"
command -v docker >/dev/null || die "docker is not installed"

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/ig-image.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT

mkdir -p "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/host" "$rootfs/proc" \
    "$rootfs/sys" "$rootfs/dev" "$rootfs/run" "$rootfs/var/lib/ig" "$rootfs/var/run"
chmod 1777 "$rootfs/tmp"
# Users and groups are named from the host's files (HOST_ROOT); these only name root for
# what runs before that (the C library's lookups).
echo 'root:x:0:0:root:/root:/sbin/nologin' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"

cp "$binary" "$rootfs/usr/bin/ig"
if command -v strip >/dev/null; then
    strip --strip-debug "$rootfs/usr/bin/ig"
fi
chmod 0755 "$rootfs/usr/bin/ig"

# The shared libraries the binary needs, at the paths the loader looks them up
# (libelf, zlib, libgcc_s, libm, libc and ld-linux on Debian; nothing for a static binary).
ldd_out="$(ldd "$binary" 2>&1 || true)"
if grep -q 'not found' <<<"$ldd_out"; then
    die "ldd $binary: a library is missing: $(grep 'not found' <<<"$ldd_out")"
fi
libs=()
if ! grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
    while read -r lib; do
        libs+=("$lib")
    done < <(awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' <<<"$ldd_out")
    [[ ${#libs[@]} -gt 0 ]] || die "ldd $binary listed no library: $ldd_out"
fi
for lib in "${libs[@]}"; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done

previous="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
log "importing $tag ($(du -sh "$rootfs" | cut -f1), ${#libs[@]} libraries)"
id="$(tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . \
    | docker import \
        --change 'ENTRYPOINT ["/usr/bin/ig"]' \
        --change 'ENV HOST_ROOT=/host' \
        --change 'LABEL org.opencontainers.image.title=ig' \
        - "$tag")"
if [[ -n "$previous" && "$previous" != "$id" ]]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
fi
echo "$id"
