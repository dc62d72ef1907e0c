#!/usr/bin/env bash
# Make sure a Docker daemon answers on /var/run/docker.sock.
#
# Installs docker.io from Debian's mirror when missing and starts dockerd in
# the background (log: /tmp/dockerd.log) when `docker info` does not answer.
# Idempotent: does nothing when a daemon already answers.
# Env: IG_TEST_DOCKER_TIMEOUT (seconds to wait for the daemon, default 60).
set -euo pipefail

timeout_s="${IG_TEST_DOCKER_TIMEOUT:-60}"

log() { echo "setup/docker: $*" >&2; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    log "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
fi

if docker info >/dev/null 2>&1; then
    exit 0
fi

log "starting dockerd (log: /tmp/dockerd.log)"
setsid dockerd >/tmp/dockerd.log 2>&1 < /dev/null &

deadline=$((SECONDS + timeout_s))
until docker info >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
        log "dockerd did not answer within ${timeout_s}s; last lines of /tmp/dockerd.log:"
        tail -n 20 /tmp/dockerd.log >&2 || true
        exit 1
    fi
    sleep 0.5
done
log "dockerd is up"
