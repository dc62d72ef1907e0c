#!/usr/bin/env bash
# Boots a full Debian 12 (bookworm) system under qemu — systemd as init, its own kernel and
# initramfs (linux-image-amd64 installed in it), root on a virtio disk — runs a script in it as
# root once systemd is up, and relays its output. Exit status: the script's.
#
# Usage: boot-system.sh SCRIPT [FILE...]
#   SCRIPT  run by /bin/sh inside the VM, from /work, where the FILEs are copied; started by a
#           systemd service (ig-vm-script.service) after basic.target, so systemctl, journalctl
#           and apt work; the VM has no network
# Prints, besides the script's output: "vm: system RELEASE, accel kvm|tcg (…)" on stderr first.
#
# The system is debootstrapped once (a few minutes, from the Debian mirror of
# /etc/apt/sources.list*) into $IG_VM_CACHE/bookworm-system-<recipe>/ as a raw ext4 image
# (`mkfs.ext4 -d`: no loop mount), with the kernel and initramfs beside it; <recipe> is a hash
# of this file, so changing how it is built rebuilds it. Every boot writes to a throwaway qcow2
# overlay: the cached image is never changed. The FILEs reach the VM as a tar archive on a second
# disk (/dev/vdb); the script's output comes back on a second serial port (ttyS1), apart from
# the kernel's and systemd's console (ttyS0, shown when the VM gives no exit status).
#
# Env: IG_VM_ACCEL=tcg (force TCG), IG_VM_CACHE (default /var/cache/ig-vm), IG_VM_TIMEOUT
#      (seconds, default 420), IG_VM_MEMORY (MiB, default 1024), IG_VM_MIRROR (default: the first
#      deb.debian.org-like URI of this machine's apt sources, else http://deb.debian.org/debian).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${IG_VM_CACHE:-/var/cache/ig-vm}"
timeout_s="${IG_VM_TIMEOUT:-420}"

log() { echo "vm: $*" >&2; }

[[ $# -ge 1 ]] || { echo "usage: boot-system.sh SCRIPT [FILE...]" >&2; exit 2; }
script="$1"
shift
[[ -f "$script" ]] || { log "no script $script"; exit 2; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# What the system holds: systemd as init, the kernel, what `ig` links (libelf1, zlib1g) so that
# `apt install ./ig_*.deb` needs no network, and what the scripts use.
packages=systemd-sysv,udev,linux-image-amd64,libelf1,zlib1g,procps,kmod
build_system() {
    local mirror="${IG_VM_MIRROR:-}"
    if [[ -z "$mirror" ]]; then
        mirror=$(grep -hoE '^(URIs: *|deb +)https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
            | grep -oE 'https?://[^ ]+' | head -n 1 || true)
        mirror="${mirror:-http://deb.debian.org/debian}"
    fi
    log "debootstrapping Debian 12 with systemd into $sys (once; from $mirror)"
    # Older recipes' systems: replaced by this one (the disk is shared).
    for old in "$cache"/bookworm-system-*; do
        if [[ -e "$old" && "$old" != "$sys" ]]; then rm -rf "$old"; fi
    done
    local work
    work=$(mktemp -d "$cache/.system.XXXXXX")
    # Removed on any failure below: a half-built system is never cached.
    trap 'discard "$work"' EXIT
    local root="$work/root"
    debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        log "debootstrap failed (log above)"
        exit 2
    }

    echo ig-vm >"$root/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 ig-vm\n' >"$root/etc/hosts"
    echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$root/etc/fstab"
    # A machine id: otherwise every boot is a "first boot" (systemd-firstboot would prompt).
    echo 5e1f1c0ffee0c0de5e1f1c0ffee0c0de >"$root/etc/machine-id"
    # Nothing the scripts do not need, so a TCG boot stays short.
    local mask=(apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service
        fstrim.timer systemd-firstboot.service getty@tty1.service serial-getty@ttyS0.service
        systemd-timesyncd.service)
    for u in "${mask[@]}"; do ln -sf /dev/null "$root/etc/systemd/system/$u"; done

    # The script runner: the files from /dev/vdb into /work, the script's output on ttyS1.
    cat >"$root/usr/local/sbin/ig-vm-script" <<'RUN'
#!/bin/sh
exec >/dev/ttyS1 2>&1
mkdir -p /work
cd /work && tar -xf /dev/vdb
echo "vm: script start"
sh /work/script.sh
echo "vm: exit $?"
sync
systemctl poweroff --force --force
RUN
    chmod 755 "$root/usr/local/sbin/ig-vm-script"
    cat >"$root/etc/systemd/system/ig-vm-script.service" <<'UNIT'
[Unit]
Description=The VM test's script (tests/vm/boot-system.sh)

[Service]
Type=exec
ExecStart=/usr/local/sbin/ig-vm-script

[Install]
WantedBy=multi-user.target
UNIT
    ln -sf ../ig-vm-script.service "$root/etc/systemd/system/multi-user.target.wants/ig-vm-script.service"

    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old

    mkdir -p "$work/out"
    cp "$root"/boot/vmlinuz-* "$work/out/vmlinuz"
    cp "$root"/boot/initrd.img-* "$work/out/initrd.img"
    basename "$root"/boot/vmlinuz-* | sed 's/^vmlinuz-//' >"$work/out/release"
    # The kernel's modules for hardware a qemu guest has not (half of the system's size): the
    # initramfs above keeps what mounting the root needs, the rest (file systems, netfilter,
    # virtio, …) stays.
    local mods
    mods=$(ls -d "$root"/lib/modules/*/kernel)
    rm -rf "$mods"/sound "$mods"/drivers/{gpu,media,infiniband,staging,scsi,usb,bluetooth,isdn,iio,mmc,hid,input}
    rm -rf "$mods"/drivers/net/{wireless,ethernet} "$mods"/net/{wireless,mac80211,bluetooth}
    chroot "$root" depmod -a "$(cat "$work/out/release")"
    # Room for what the scripts install and log; the image file is sparse.
    local size_mb
    size_mb=$(($(du -sm "$root" | cut -f1) + 768))
    mkfs.ext4 -q -L ig-vm -d "$root" "$work/out/rootfs.img" "${size_mb}M" >/dev/null
    mv "$work/out" "$sys"
    trap - EXIT
    discard "$work"
}

# Removes a build directory, after unmounting what debootstrap may have left mounted in it (its
# chroot's /proc, /sys, or /dev bind-mounted from here): never deletes through a mount.
discard() {
    local dir="$1" m
    for m in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
        umount -l "$m" || true
    done
    if awk -v d="$dir/" 'index($2, d) == 1 {found=1} END {exit !found}' /proc/self/mounts; then
        log "left $dir in place: something is still mounted in it"
        return
    fi
    rm -rf "$dir"
}

# The cached system's name follows how it is built.
recipe=$({ echo "$packages"; declare -f build_system; } | sha256sum | cut -c1-12)
sys="$cache/bookworm-system-$recipe"

mkdir -p "$cache"
# One build at a time: a second run waits for the first one's system.
exec 9>"$cache/.bookworm-system.lock"
flock 9
if [[ ! -f "$sys/rootfs.img" ]]; then
    build_system
fi
flock -u 9
release=$(cat "$sys/release")

run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
qemu-img create -q -f qcow2 -F raw -b "$sys/rootfs.img" "$run/disk.qcow2"
mkdir "$run/files"
cp "$script" "$run/files/script.sh"
for f in "$@"; do
    cp -a "$f" "$run/files/"
done
tar -C "$run/files" -cf "$run/files.tar" .
: >"$run/console"
: >"$run/out"

boot() { # ACCEL_ARGS... -- TIMEOUT
    local args=() t
    while [[ "$1" != -- ]]; do args+=("$1"); shift; done
    t="$2"
    # One vCPU under TCG, as boot.sh (a kernel patching its own text on one vCPU while another
    # runs it took an "int3" oops there once).
    local smp=1
    [[ " ${args[*]} " == *accel=kvm* ]] && smp=2
    timeout "$t" qemu-system-x86_64 "${args[@]}" -m "${IG_VM_MEMORY:-1024}" -smp "$smp" \
        -kernel "$sys/vmlinuz" -initrd "$sys/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 quiet loglevel=3 panic=-1 systemd.show_status=error" \
        -drive "file=$run/disk.qcow2,format=qcow2,if=virtio" \
        -drive "file=$run/files.tar,format=raw,if=virtio,readonly=on" \
        -nic none -display none -no-reboot -monitor none \
        -serial "file:$run/console" -serial "file:$run/out" </dev/null
}

# KVM when a guest gets going with it (see boot.sh: under some nested setups /dev/kvm opens but
# the guest hangs); the probe's verdict is cached beside the system.
accel=tcg
accel_args=(-machine accel=tcg -cpu max)
why="no writable /dev/kvm"
if [[ "${IG_VM_ACCEL:-}" == tcg ]]; then
    why="IG_VM_ACCEL=tcg"
elif [[ -w /dev/kvm ]]; then
    if [[ ! -f "$sys/kvm-probe" ]]; then
        # An init that only says so and powers off, on busybox (as in boot.sh).
        command -v busybox >/dev/null || apt-get install -y -qq busybox-static >/dev/null
        mkdir -p "$run/probe/bin"
        cp "$(command -v busybox)" "$run/probe/bin/busybox"
        printf '#!/bin/busybox sh\n/bin/busybox echo vm: kvm boots\n/bin/busybox poweroff -f\n' >"$run/probe/init"
        chmod +x "$run/probe/init"
        (cd "$run/probe" && find . | cpio -o -H newc --quiet | gzip -1) >"$run/probe.cpio.gz"
        timeout 20 qemu-system-x86_64 -machine accel=kvm -cpu host -m 256 \
            -kernel "$sys/vmlinuz" -initrd "$run/probe.cpio.gz" -append "console=ttyS0 panic=-1 rdinit=/init" \
            -display none -no-reboot -monitor none -serial "file:$run/probe.log" </dev/null >/dev/null 2>&1 || true
        if grep -q "vm: kvm boots" "$run/probe.log" 2>/dev/null; then
            echo ok >"$sys/kvm-probe"
        else
            echo "a KVM guest did not reach its init within 20 s" >"$sys/kvm-probe"
        fi
    fi
    if [[ "$(cat "$sys/kvm-probe")" == ok ]]; then
        accel=kvm
        accel_args=(-machine accel=kvm -cpu host)
    else
        why="$(cat "$sys/kvm-probe")"
    fi
fi
[[ $accel == kvm ]] || accel="tcg ($why)"
log "system Debian 12 $release, accel $accel"

set +e
boot "${accel_args[@]}" -- "$timeout_s"
qemu_status=$?
set -e
out=$(tr -d '\r' <"$run/out")
# The script's output: what came between the start and exit lines.
sed -n "/vm: script start/,/^vm: exit [0-9]*\$/p" <<<"$out" | sed "1d;\$d"
code=$(grep -oE '^vm: exit [0-9]+$' <<<"$out" | tail -n 1 | awk '{print $3}' || true)
if [[ -z "$code" ]]; then
    why="qemu status $qemu_status"
    [[ $qemu_status == 124 ]] && why="timed out after $timeout_s s"
    log "no exit status from the VM ($why); script output:"
    tail -n 40 <<<"$out" >&2
    if [[ -s "$run/console" ]]; then
        log "console (the kernel's and systemd's errors):"
        tr -d '\r' <"$run/console" | tail -n 60 >&2
    fi
    exit 3
fi
exit "$code"
