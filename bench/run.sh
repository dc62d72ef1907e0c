#!/usr/bin/env bash
# `make bench`: builds the exec storm, its no-op target and ig, makes sure Docker and the test
# image are there, then runs bench/bench.py (interleaved rounds against execsnoop and bpftrace)
# and bench/syscalls.py (a dd syscall storm under tracers of every syscall).
# Knobs (environment): BENCH_ROUNDS (5), BENCH_EXECS (20000), BENCH_WORKERS (2),
# BENCH_ONLY=ig-json,execsnoop (a subset; the untraced baselines always run), BENCH_NO_CONTAINER=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $EUID -ne 0 ]]; then
    echo "bench: needs root (BPF, Docker)" >&2
    exit 1
fi
command -v gcc >/dev/null || { apt-get install -y -qq gcc libc6-dev >/dev/null; }
# BPF time per exec: bpftool reads the programs' run_time_ns (kernel.bpf_stats_enabled).
command -v bpftool >/dev/null || { apt-get install -y -qq bpftool >/dev/null; }
mkdir -p target/bench
# A no-op without libc (exit_group only), static so it also runs in the busybox container.
gcc -O2 -static -nostdlib -fno-stack-protector -o target/bench/igbnoop bench/noop.c
gcc -O2 -static -o target/bench/igbstorm bench/storm.c
cargo build --release --quiet
if [[ -z "${BENCH_NO_CONTAINER:-}" ]]; then
    bash tests/setup/docker.sh
    bash tests/setup/busybox-image.sh
fi
# The image must be in the local store before start-to-first-event is measured.
target/release/ig image inspect trace_exec >/dev/null

echo "bench: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)" >&2
python3 bench/bench.py
# What tracers of every syscall cost (traceloop, failed-exec tracking) against empty programs.
[[ -n "${BENCH_NO_CONTAINER:-}" ]] || python3 bench/syscalls.py
