#!/usr/bin/env bash
# Build the test image ig-test/busybox:latest without pulling anything.
#
# The rootfs is busybox-static (from Debian's mirror) with its applets linked
# into /bin, a root user and /tmp. It is imported into Docker and, when a
# containerd socket is given, into these containerd namespaces.
# Idempotent: existing images are kept.
# Usage: busybox-image.sh [CONTAINERD_SOCKET]
# Env: IG_TEST_IMAGE (default ig-test/busybox:latest),
#      IG_TEST_CONTAINERD_NAMESPACES (default "k8s.io default").
set -euo pipefail

image="${IG_TEST_IMAGE:-ig-test/busybox:latest}"
ctr_sock="${1:-${IG_TEST_CONTAINERD_SOCK:-}}"
namespaces="${IG_TEST_CONTAINERD_NAMESPACES:-k8s.io default}"

log() { echo "setup/busybox-image: $*" >&2; }

# The rootfs needs a static busybox (Debian's busybox-static: /bin/busybox).
if ! dpkg -s busybox-static >/dev/null 2>&1; then
    log "installing busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq busybox-static >/dev/null
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
    rootfs="$(mktemp -d)"
    trap 'rm -rf "$rootfs"' EXIT
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/root"
    chmod 1777 "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    # --install needs /proc/self/exe to be the busybox binary: run it in a
    # chroot so the symlinks point at /bin/busybox inside the rootfs.
    chroot "$rootfs" /bin/busybox --install -s /bin
    echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
    echo 'root:x:0:' >"$rootfs/etc/group"
    log "importing $image into docker"
    tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/sh"]' - "$image" >/dev/null
fi

if [[ -n "$ctr_sock" ]]; then
    for ns in $namespaces; do
        ref="docker.io/${image}"
        if ctr --address "$ctr_sock" -n "$ns" images check "name==$ref" 2>/dev/null | grep -q "$ref"; then
            continue
        fi
        log "importing $image into containerd namespace $ns ($ctr_sock)"
        docker save "$image" | ctr --address "$ctr_sock" -n "$ns" images import - >/dev/null
    done
fi
