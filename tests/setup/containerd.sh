#!/usr/bin/env bash
# Make sure a containerd answers for the tests and print its socket path.
#
# Uses the system containerd (/run/containerd/containerd.sock) when it already
# answers. Otherwise starts a standalone containerd with its own socket, root
# and state directories under IG_TEST_CONTAINERD_DIR (default
# /run/ig-test-containerd), so it never shares files with the containerd that
# dockerd starts for itself (/var/run/docker/containerd/...).
# Idempotent: an already running test containerd is reused.
# Output (stdout): the socket path, nothing else.
# Env: IG_TEST_CONTAINERD_TIMEOUT (seconds, default 30),
#      IG_TEST_CONTAINERD_STANDALONE=1 to ignore the system containerd.
set -euo pipefail

timeout_s="${IG_TEST_CONTAINERD_TIMEOUT:-30}"
dir="${IG_TEST_CONTAINERD_DIR:-/run/ig-test-containerd}"
sock="$dir/containerd.sock"
system_sock=/run/containerd/containerd.sock

log() { echo "setup/containerd: $*" >&2; }

answers() { ctr --address "$1" --timeout 2s version >/dev/null 2>&1; }

if ! command -v containerd >/dev/null 2>&1 || ! command -v ctr >/dev/null 2>&1; then
    log "installing containerd"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq containerd >/dev/null
fi

if [[ "${IG_TEST_CONTAINERD_STANDALONE:-0}" != 1 ]] && [[ -S "$system_sock" ]] && answers "$system_sock"; then
    echo "$system_sock"
    exit 0
fi

if [[ -S "$sock" ]] && answers "$sock"; then
    echo "$sock"
    exit 0
fi

mkdir -p "$dir/root" "$dir/state"
# The CRI plugin is not needed (tests drive containerd with ctr) and would
# try to set up networking; disable it to keep this daemon minimal.
cat >"$dir/config.toml" <<CONF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  address = "$dir/debug.sock"
CONF

rm -f "$sock" "$sock.ttrpc" "$dir/debug.sock"
log "starting containerd on $sock (log: $dir/containerd.log)"
setsid containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 < /dev/null &
echo $! >"$dir/containerd.pid"

deadline=$((SECONDS + timeout_s))
until [[ -S "$sock" ]] && answers "$sock"; do
    if ((SECONDS >= deadline)); then
        log "containerd did not answer within ${timeout_s}s; last lines of $dir/containerd.log:"
        tail -n 20 "$dir/containerd.log" >&2 || true
        exit 1
    fi
    sleep 0.3
done
echo "$sock"
