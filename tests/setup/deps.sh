#!/usr/bin/env bash
# Installs what building and testing ig needs on a fresh Debian 12 machine, and mounts tracefs.
# Idempotent: only missing packages are installed.
set -euo pipefail

build_pkgs=(clang llvm libelf-dev zlib1g-dev pkg-config protobuf-compiler libbpf-dev make)
test_pkgs=(docker.io containerd docker-registry skopeo busybox-static jq apache2-utils util-linux python3
    qemu-system-x86 cpio binutils bpftool openssl qemu-utils debootstrap e2fsprogs dpkg-dev)
# tests/kubernetes_manifests.rs and tests/oras_interop.rs make venvs (kubernetes-validate, the ORAS
# Python SDK: pip, from PyPI).
test_pkgs+=(python3-venv)
# tests/containers_podman.rs (tests/setup/podman.sh starts its service).
test_pkgs+=(podman curl)
bench_pkgs=(libbpf-tools bpftrace)

want=("${build_pkgs[@]}")
case "${1:-build}" in
    test) want+=("${test_pkgs[@]}") ;;
    bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup/deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The .deb (make deb, tests/system_vm.rs) is made by cargo-deb, from crates.io.
if [[ "${1:-build}" != build ]] && ! cargo deb --version >/dev/null 2>&1; then
    echo "setup/deps: installing cargo-deb" >&2
    cargo install --locked cargo-deb
fi

if [[ ! -d /sys/kernel/tracing/events ]]; then
    mount -t tracefs tracefs /sys/kernel/tracing
fi
