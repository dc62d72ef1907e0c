#!/usr/bin/env bash
# Make sure podman's Docker-compatible API answers on /run/podman/podman.sock and the test image
# is in podman's store.
#
# Installs Debian's podman when missing, starts `podman system service --time=0` in its own
# session (log: /tmp/podman-service.log) when nothing answers on the socket, and loads
# ig-test/busybox:latest from Docker (`docker save | podman load`: podman cannot pull here; run
# tests/setup/docker.sh and busybox-image.sh first). Idempotent.
# Prints the global flags every podman command of the tests must use (the service uses them too):
# the cgroupfs manager and the file events logger when systemd is not running (this machine).
# Containers need `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`: rlimits cannot be raised
# here, and podman's defaults would raise them.
# Env: IG_TEST_IMAGE (default ig-test/busybox:latest), IG_TEST_PODMAN_TIMEOUT (default 60 s).
set -euo pipefail

image="${IG_TEST_IMAGE:-ig-test/busybox:latest}"
sock=/run/podman/podman.sock
timeout_s="${IG_TEST_PODMAN_TIMEOUT:-60}"

log() { echo "setup/podman: $*" >&2; }

if ! command -v podman >/dev/null 2>&1; then
    log "installing podman"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq podman >/dev/null
fi

flags=()
if [[ ! -d /run/systemd/system ]]; then
    flags+=(--cgroup-manager cgroupfs --events-backend file)
fi

answers() { curl -s -m 5 --unix-socket "$sock" http://d/_ping 2>/dev/null | grep -q OK; }

if ! answers; then
    # Only one starter at a time (parallel test binaries).
    exec 9>/run/podman-ig-test.lock
    flock 9
    if ! answers; then
        log "starting podman system service (log: /tmp/podman-service.log)"
        mkdir -p /run/podman
        rm -f "$sock"
        setsid podman "${flags[@]}" system service --time=0 "unix://$sock" \
            >/tmp/podman-service.log 2>&1 </dev/null &
        deadline=$((SECONDS + timeout_s))
        until answers; do
            if ((SECONDS >= deadline)); then
                log "podman did not answer on $sock within ${timeout_s}s:"
                tail -n 20 /tmp/podman-service.log >&2 || true
                exit 1
            fi
            sleep 0.2
        done
    fi
    flock -u 9
fi

if ! podman "${flags[@]}" image exists "$image"; then
    log "loading $image into podman"
    docker save "$image" | podman "${flags[@]}" load >/dev/null
fi

echo "${flags[*]}"
