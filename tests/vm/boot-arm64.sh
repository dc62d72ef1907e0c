#!/usr/bin/env bash
# Boots Debian's arm64 kernel under qemu-system-aarch64 (TCG: no KVM across architectures) with
# an initramfs that holds Debian's arm64 busybox and bpftool (with the libraries it links) and the
# given files, runs a script in it as root, and relays its output. Exit status: the script's.
# The x86_64 harness is boot.sh; this one exists to put our arm64 BPF objects in front of an
# arm64 kernel's verifier.
#
# Usage: boot-arm64.sh KERNEL_PACKAGE SCRIPT [FILE...]
#   KERNEL_PACKAGE  a Debian package (linux-image-6.1.0-57-arm64) or "6.1" (the newest
#                   linux-image-6.1.0-*-arm64)
#   SCRIPT          run by /bin/sh inside the VM, from /work, where the FILEs are copied;
#                   bpftool is on PATH; bpffs, tracefs and sysfs are mounted
# Prints, besides the script's output: "vm: kernel RELEASE, accel tcg (arm64)" on stderr first.
# The arm64 packages come from the host's Debian sources through a private apt state under the
# cache (no `dpkg --add-architecture` on the host), and are kept between runs.
# Env: IG_VM_CACHE (default /var/cache/ig-vm), IG_VM_TIMEOUT (seconds, default 300),
#      IG_VM_MEMORY (MiB, 1024).
set -euo pipefail

cache="${IG_VM_CACHE:-/var/cache/ig-vm}"
timeout_s="${IG_VM_TIMEOUT:-300}"

log() { echo "vm: $*" >&2; }

[[ $# -ge 2 ]] || { echo "usage: boot-arm64.sh KERNEL_PACKAGE SCRIPT [FILE...]" >&2; exit 2; }
want="$1"
script="$2"
shift 2
[[ -f "$script" ]] || { log "no script $script"; exit 2; }

need=()
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
command -v cpio >/dev/null || need+=(cpio)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# apt for arm64 with its own lists, status and archive cache: the host's dpkg is not touched.
apt_dir="$cache/arm64-apt"
mkdir -p "$apt_dir"/state/lists/partial "$apt_dir"/cache/archives/partial "$apt_dir"/sources.list.d
touch "$apt_dir/state/status"
if [[ ! -f "$apt_dir/sources.list.d/debian.sources" ]]; then
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        cp /etc/apt/sources.list.d/debian.sources "$apt_dir/sources.list.d/"
    else
        . /etc/os-release
        cat >"$apt_dir/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $VERSION_CODENAME $VERSION_CODENAME-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $VERSION_CODENAME-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
fi
apt_opts=(-qq -o APT::Architecture=arm64 -o APT::Architectures::=arm64
    -o Dir::State="$apt_dir/state" -o Dir::State::status="$apt_dir/state/status"
    -o Dir::Cache="$apt_dir/cache" -o Dir::Etc::SourceList=/dev/null
    -o Dir::Etc::SourceParts="$apt_dir/sources.list.d"
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root)

case "$want" in
    6.1) pattern='^linux-image-6\.1\.0-[0-9]+-arm64$' ;;
    *) pattern="^${want//./\\.}\$" ;;
esac
newest() { apt-cache "${apt_opts[@]}" pkgnames linux-image- 2>/dev/null | grep -E "$pattern" | sort -V | tail -n 1 || true; }
pkg=$(newest)
if [[ -z "$pkg" ]]; then
    apt-get "${apt_opts[@]}" update
    pkg=$(newest)
fi
[[ -n "$pkg" ]] || { log "no Debian arm64 package matches $want"; exit 2; }

# The kernel and the userland (busybox, bpftool and what it links), unpacked once per kernel.
kdir="$cache/$pkg"
userland=(busybox-static bpftool libc6 libgcc-s1 libelf1 zlib1g libcap2)
if [[ ! -f "$kdir/vmlinuz" || ! -x "$kdir/root/usr/sbin/bpftool" ]]; then
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    log "fetching $pkg ${userland[*]} (arm64)"
    if ! (cd "$tmp" && apt-get "${apt_opts[@]}" download "$pkg" "${userland[@]}" >/dev/null 2>&1); then
        # Lists older than the mirror: refresh them (the newest kernel may have changed too).
        apt-get "${apt_opts[@]}" update
        pkg=$(newest)
        [[ -n "$pkg" ]] || { log "no Debian arm64 package matches $want"; exit 2; }
        kdir="$cache/$pkg"
        log "fetching $pkg ${userland[*]} (arm64)"
        (cd "$tmp" && apt-get "${apt_opts[@]}" download "$pkg" "${userland[@]}" >/dev/null)
    fi
    mkdir -p "$tmp/k" "$tmp/root"
    dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/k"
    for p in "${userland[@]}"; do
        dpkg-deb -x "$tmp"/"$p"_*.deb "$tmp/root"
    done
    # Only what the initramfs needs (the kernel, the binaries, the shared libraries), put in
    # place whole so that an interrupted fetch is fetched again.
    new="$tmp/kernel"
    mkdir -p "$new/root/usr/sbin" "$new/root/bin"
    cp "$tmp"/k/boot/vmlinuz-* "$new/vmlinuz"
    basename "$tmp"/k/boot/vmlinuz-* | sed 's/^vmlinuz-//' >"$new/release"
    cp "$tmp/root/usr/sbin/bpftool" "$new/root/usr/sbin/"
    cp "$tmp/root/bin/busybox" "$new/root/bin/"
    (cd "$tmp/root" && find lib usr/lib -name '*.so*' \( -type f -o -type l \) -print0 2>/dev/null |
        cpio -0 -pdm --quiet "$new/root")
    rm -rf "$kdir"
    mv "$new" "$kdir"
    rm -rf "$tmp"
fi
release=$(cat "$kdir/release")

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"
cp -a "$kdir/root/." "$root/"
mkdir -p "$root"/{sbin,proc,sys,dev,tmp,work,etc,usr/bin}
# The dynamic loader where bpftool's PT_INTERP names it (merged /usr in the package).
if [[ ! -e "$root/lib/ld-linux-aarch64.so.1" ]]; then
    ld=$(cd "$root" && find . -name 'ld-linux-aarch64.so.1' | head -n 1)
    [[ -n "$ld" ]] || { log "no ld-linux-aarch64.so.1 in libc6"; exit 2; }
    mkdir -p "$root/lib"
    ln -sf "/${ld#./}" "$root/lib/ld-linux-aarch64.so.1"
fi
cp "$script" "$root/work/script.sh"
for f in "$@"; do
    cp -a "$f" "$root/work/"
done
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/bin:/sbin
export LD_LIBRARY_PATH=/lib/aarch64-linux-gnu:/usr/lib/aarch64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
cd /work
echo "vm: script start"
sh /work/script.sh
echo "vm: exit $?"
sync
poweroff -f
INIT
chmod +x "$root/init"
initrd="$root.cpio.gz"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd"
trap 'rm -rf "$root" "$initrd"' EXIT

log "kernel $release ($pkg), accel tcg (arm64 on $(uname -m))"
out=$(mktemp)
trap 'rm -rf "$root" "$initrd" "$out"' EXIT
set +e
timeout "$timeout_s" qemu-system-aarch64 -machine virt -cpu max -smp 2 -m "${IG_VM_MEMORY:-1024}" \
    -kernel "$kdir/vmlinuz" -initrd "$initrd" \
    -append "console=ttyAMA0 quiet loglevel=3 panic=-1 rdinit=/init" \
    -nographic -no-reboot -monitor none -serial stdio </dev/null | tr -d '\r' >"$out"
qemu_status=$?
set -e
sed -n "/vm: script start/,/^vm: exit [0-9]*\$/p" "$out" | sed "1d;\$d"
code=$(grep -oE '^vm: exit [0-9]+$' "$out" | tail -n 1 | awk '{print $3}' || true)
if [[ -z "$code" ]]; then
    log "no exit status from the VM (qemu status $qemu_status); console:"
    tail -n 40 "$out" >&2
    exit 3
fi
exit "$code"
