#!/usr/bin/env bash
# Boots one of Debian's kernels under qemu with an initramfs that holds busybox, the `ig` under
# test (with the libraries it links) and the given files, runs a script in it as root, and
# relays its output. Exit status: the script's.
#
# Usage: boot.sh KERNEL_PACKAGE SCRIPT [FILE...]
#   KERNEL_PACKAGE  a Debian package (linux-image-6.1.0-50-amd64) or a pattern of one:
#                   "6.1" (the newest linux-image-6.1.0-*-amd64), "6.12" (the newest
#                   linux-image-6.12.*+deb12-amd64)
#   SCRIPT          run by /bin/sh inside the VM, from /work, where the FILEs are copied;
#                   `ig` is on PATH; the kernel's overlay module is loaded
# Prints, besides the script's output: "vm: kernel RELEASE, accel kvm|tcg" on stderr first.
# Env: IG_VM_ACCEL=tcg (force TCG), IG_BIN (default target/release/ig), IG_VM_CACHE (default /var/cache/ig-vm: kernel
#      packages, kept between runs), IG_VM_TIMEOUT (seconds, default 180), IG_VM_MEMORY (MiB, 1024).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${IG_VM_CACHE:-/var/cache/ig-vm}"
ig_bin="${IG_BIN:-$repo/target/release/ig}"
timeout_s="${IG_VM_TIMEOUT:-180}"

log() { echo "vm: $*" >&2; }

[[ $# -ge 2 ]] || { echo "usage: boot.sh KERNEL_PACKAGE SCRIPT [FILE...]" >&2; exit 2; }
want="$1"
script="$2"
shift 2
[[ -x "$ig_bin" ]] || { log "no ig binary at $ig_bin (cargo build --release)"; exit 2; }
[[ -f "$script" ]] || { log "no script $script"; exit 2; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || need+=(busybox-static)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$cache"
case "$want" in
    6.1) pattern='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
    6.12) pattern='^linux-image-6\.12\.[0-9]+\+deb12-amd64$' ;;
    *) pattern="^${want//./\\.}\$" ;;
esac
pkg=$(apt-cache pkgnames linux-image- 2>/dev/null | grep -E "$pattern" | sort -V | tail -n 1 || true)
if [[ -z "$pkg" ]]; then
    apt-get update -qq
    pkg=$(apt-cache pkgnames linux-image- | grep -E "$pattern" | sort -V | tail -n 1 || true)
fi
[[ -n "$pkg" ]] || { log "no Debian package matches $want"; exit 2; }

kdir="$cache/$pkg"
# The modules the scripts load (overlay: trace_exec's upper_layer), kept beside the kernel.
modules=(fs/overlayfs/overlay.ko)
if [[ ! -f "$kdir/vmlinuz" || ! -f "$kdir/modules/overlay.ko" ]]; then
    log "fetching $pkg"
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null)
    dpkg-deb -x "$tmp"/*.deb "$tmp/x"
    mkdir -p "$kdir/modules"
    cp "$tmp"/x/boot/vmlinuz-* "$kdir/vmlinuz"
    for m in "${modules[@]}"; do
        # Debian compresses modules with xz from 6.12 on; busybox's insmod takes them plain.
        src=("$tmp"/x/lib/modules/*/kernel/"$m"*)
        case "${src[0]}" in
            *.xz) xz -dc "${src[0]}" >"$kdir/modules/$(basename "$m")" ;;
            *) cp "${src[0]}" "$kdir/modules/" ;;
        esac
    done
    basename "$tmp"/x/boot/vmlinuz-* | sed 's/^vmlinuz-//' >"$kdir/release"
    rm -rf "$tmp"
fi
release=$(cat "$kdir/release")

# The initramfs: busybox, ig and the libraries it links, the script and its files.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root" # the VM's /: other users (the scripts' uid 1234) must traverse it
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,work,etc,root,lib64,usr/bin}
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
done
# Without debug info: a test build's binary is ten times larger with it.
objcopy --strip-debug "$ig_bin" "$root/usr/bin/ig" 2>/dev/null || cp "$ig_bin" "$root/usr/bin/ig"
for lib in $(ldd "$ig_bin" | grep -oE '/[^ ]+\.so[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
mkdir -p "$root/lib/modules"
cp "$kdir"/modules/*.ko "$root/lib/modules/"
cp "$script" "$root/work/script.sh"
for f in "$@"; do
    cp -a "$f" "$root/work/"
done
cat >"$root/init" <<'INIT'
#!/bin/sh
export PATH=/usr/bin:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null; done
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

# KVM when a guest boots with it: under some nested setups /dev/kvm opens but the guest hangs
# before its first console line. Probed once per kernel (an init that only powers off).
boot() { # ACCEL_ARGS... -- INITRD TIMEOUT
    local args=() initrd t
    while [[ "$1" != -- ]]; do args+=("$1"); shift; done
    initrd="$2" t="$3"
    # One vCPU under TCG: with two, a kernel patching its own text while the other vCPU runs
    # it (attaching fentry where a kprobe just was) took an "int3" oops under TCG's
    # cross-modifying code once; KVM has no such gap.
    local smp=1
    [[ " ${args[*]} " == *accel=kvm* ]] && smp=2
    timeout "$t" qemu-system-x86_64 "${args[@]}" -m "${IG_VM_MEMORY:-1024}" -smp "$smp" \
        -kernel "$kdir/vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" \
        -nographic -no-reboot -monitor none -serial stdio </dev/null | tr -d '\r'
}
accel=tcg
accel_args=(-machine accel=tcg -cpu max)
why="no writable /dev/kvm"
if [[ "${IG_VM_ACCEL:-}" == tcg ]]; then
    why="IG_VM_ACCEL=tcg"
elif [[ -w /dev/kvm ]]; then
    if [[ ! -f "$kdir/kvm-probe" ]]; then
        probe=$(mktemp -d)
        mkdir -p "$probe/bin"
        cp /bin/busybox "$probe/bin/busybox"
        printf '#!/bin/busybox sh\n/bin/busybox echo vm: kvm boots\n/bin/busybox poweroff -f\n' >"$probe/init"
        chmod +x "$probe/init"
        (cd "$probe" && find . | cpio -o -H newc --quiet | gzip -1) >"$probe.cpio.gz"
        if boot -machine accel=kvm -cpu host -- "$probe.cpio.gz" 20 2>/dev/null | grep -q "vm: kvm boots"; then
            echo ok >"$kdir/kvm-probe"
        else
            echo "a KVM guest did not reach its init within 20 s" >"$kdir/kvm-probe"
        fi
        rm -rf "$probe" "$probe.cpio.gz"
    fi
    if [[ "$(cat "$kdir/kvm-probe")" == ok ]]; then
        accel=kvm
        accel_args=(-machine accel=kvm -cpu host)
    else
        why="$(cat "$kdir/kvm-probe")"
    fi
fi
[[ $accel == kvm ]] || accel="tcg ($why)"
log "kernel $release ($pkg), accel $accel"

out=$(mktemp)
trap 'rm -rf "$root" "$initrd" "$out"' EXIT
set +e
boot "${accel_args[@]}" -- "$initrd" "$timeout_s" >"$out"
qemu_status=$?
set -e
# The script's output: what came between the start and exit lines.
sed -n "/vm: script start/,/^vm: exit [0-9]*\$/p" "$out" | sed "1d;\$d"
code=$(grep -oE '^vm: exit [0-9]+$' "$out" | tail -n 1 | awk '{print $3}' || true)
if [[ -z "$code" ]]; then
    log "no exit status from the VM (qemu status $qemu_status); console:"
    tail -n 40 "$out" >&2
    exit 3
fi
exit "$code"
