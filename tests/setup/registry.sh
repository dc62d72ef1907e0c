#!/usr/bin/env bash
# Start or stop a local OCI registry (Debian's docker-registry) for the distribution tests.
#
#   registry.sh start DIR PORT [USER PASSWORD]   # htpasswd (bcrypt) auth when USER is given
#   registry.sh stop DIR
#
# The registry listens on 127.0.0.1:PORT over plain HTTP, keeps its storage under DIR/data,
# runs in its own session (setsid) and records its pid in DIR/pid. It uses its own minimal
# config (DIR/config.yml): the packaged /etc/docker/registry/config.yml turns on htpasswd auth
# with a file that rejects every request. Installs docker-registry, skopeo and apache2-utils
# (htpasswd) when missing.
set -euo pipefail

log() { echo "setup/registry: $*" >&2; }

install_missing() {
    local missing=()
    command -v docker-registry >/dev/null 2>&1 || [[ -x /usr/bin/docker-registry ]] || missing+=(docker-registry)
    command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
    command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

start() {
    local dir="$1" port="$2" user="${3:-}" password="${4:-}"
    install_missing
    mkdir -p "$dir/data"
    local auth=""
    if [[ -n "$user" ]]; then
        htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"
        auth="auth:
  htpasswd:
    realm: ig-test-registry
    path: $dir/htpasswd"
    fi
    cat >"$dir/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
CONFIG
    setsid /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null \
            || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            log "registry on 127.0.0.1:$port (pid $(cat "$dir/pid"))"
            return 0
        fi
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            log "registry exited:"; cat "$dir/registry.log" >&2
            return 1
        fi
        sleep 0.1
    done
    log "registry did not listen on 127.0.0.1:$port"; cat "$dir/registry.log" >&2
    return 1
}

stop() {
    local dir="$1"
    [[ -f "$dir/pid" ]] || return 0
    local pid
    pid="$(cat "$dir/pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
}

case "${1:-}" in
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
*) echo "usage: $0 start DIR PORT [USER PASSWORD] | stop DIR" >&2; exit 2 ;;
esac
