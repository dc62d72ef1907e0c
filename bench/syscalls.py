#!/usr/bin/env python3
"""Syscall-storm benchmark: what tracers of every syscall cost the processes they do not trace,
and the containers they record.

Called by bench/run.sh. The storm is `dd if=/dev/zero of=/dev/null bs=1 count=N` (N reads and N
writes of one byte), on the host or inside the benchmark container. Every traced storm is paired
with an untraced one run just before it in the same place; the ratio is traced time / untraced
time, median over the rounds. The floor is the same storm with empty sys_enter/sys_exit raw
tracepoint programs attached (bench/floor): the cost no tracer of every syscall avoids.
"""

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IG = os.environ.get("IG", os.path.join(ROOT, "target", "release", "ig"))
COUNT = int(os.environ.get("BENCH_DD_COUNT", "1000000"))
ROUNDS = int(os.environ.get("BENCH_DD_ROUNDS", "3"))
IMAGE = os.environ.get("BENCH_IMAGE", "ig-test/busybox:latest")
RECORDED = "igbench-rec"
OTHER = "igbench-other"
TMP = tempfile.mkdtemp(prefix="igsys.")
STORE = os.path.join(TMP, "store")
ENV = dict(os.environ, IG_STORE=STORE)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def dd(where):
    cmd = ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={COUNT}"]
    if where == "container":
        cmd = ["docker", "exec", RECORDED] + cmd
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - t0


CONFIGS = [
    # name, where the storm runs, the tracer (None: untraced), what the row means
    ("floor", "host", [IG, "run", "floor", "--host", "--verify-image=false"],
     "empty sys_enter/sys_exit raw tracepoint programs (the floor)"),
    ("trace_exec-failed", "host", [IG, "run", "trace_exec", "--host", "--ignore-failed=false", "-o", "json"],
     "`ig run trace_exec --host --ignore-failed=false` (failed-exec tracking)"),
    ("traceloop-other", "host", [IG, "run", "traceloop", "-c", OTHER],
     "`ig run traceloop -c other`: the host, not recorded"),
    ("traceloop-recorded", "container", [IG, "run", "traceloop", "-c", RECORDED],
     "`ig run traceloop -c igbench-rec`: inside the recorded container"),
]


def traced(tracer, where):
    out = open(os.path.join(TMP, "tracer.out"), "wb")
    p = subprocess.Popen(tracer, stdout=out, stderr=subprocess.STDOUT, env=ENV)
    time.sleep(2.5)
    if p.poll() is not None:
        raise RuntimeError(f"{tracer} exited: {open(out.name).read()}")
    t = dd(where)
    p.send_signal(signal.SIGINT)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return t


def main():
    subprocess.run([IG, "image", "build", os.path.join(ROOT, "bench", "floor"), "-t", "floor"],
                   check=True, capture_output=True, env=ENV)
    for name in (RECORDED, OTHER):
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "run", "-d", "--name", name, IMAGE, "sleep", "100000"],
                       check=True, capture_output=True)
    results = {c[0]: [] for c in CONFIGS}
    base = {"host": [], "container": []}
    try:
        for rnd in range(ROUNDS):
            for name, where, tracer, _ in CONFIGS:
                u = dd(where)
                t = traced(tracer, where)
                base[where].append(u)
                results[name].append((t, u))
                log(f"round {rnd + 1}/{ROUNDS} {name:20s} {t:.2f} s (untraced just before {u:.2f} s, "
                    f"{t / u:.2f}x)")
    finally:
        for name in (RECORDED, OTHER):
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    floor = statistics.median(t / u for t, u in results["floor"])
    print()
    print(f"Syscall storm: `dd bs=1 count={COUNT}` ({2 * COUNT:,} syscalls), {ROUNDS} rounds, "
          "each traced storm paired with an untraced one just before it; medians.")
    print()
    print("| configuration | untraced | traced | slowdown | cost vs the floor's |")
    print("|---|---:|---:|---:|---:|")
    for name, where, _, what in CONFIGS:
        rs = results[name]
        ratio = statistics.median(t / u for t, u in rs)
        vs_floor = (ratio - 1) / (floor - 1) if floor > 1 else float("nan")
        print(f"| {what} | {statistics.median(u for _, u in rs):.2f} s "
              f"| {statistics.median(t for t, _ in rs):.2f} s | {ratio:.2f}x | {vs_floor:.2f} |")


def map_memlock_kb(pid):
    """BPF map memory (bpftool's memlock) of the maps process `pid` holds, from its fdinfo."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = open(f"/proc/{pid}/fdinfo/{fd}").read()
        except OSError:
            continue
        if "map_type:" in text:
            for line in text.splitlines():
                if line.startswith("memlock:"):
                    total += int(line.split()[1])
    return total // 1024


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def memory(containers=100):
    """`ig daemon --traceloop` recording `containers` containers at once: its RSS and the BPF
    map memory it holds, with the buffers' bound (max containers x records x 256 bytes)."""
    sock = os.path.join(TMP, "ig.sock")
    remote = "unix://" + sock
    d = subprocess.Popen([IG, "daemon", "--socket", sock, "--state-dir", os.path.join(TMP, "state"),
                          "--runtimes", "docker", "--traceloop", "--traceloop-max-containers",
                          str(containers + 8)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    names = [f"igmem{i:03d}" for i in range(containers)]
    try:
        for _ in range(100):
            if subprocess.run([IG, "traceloop", "list", "--remote", remote],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        idle = (rss_kb(d.pid), map_memlock_kb(d.pid))
        for n in names:
            subprocess.run(["docker", "run", "-d", "--name", n, IMAGE, "sh", "-c",
                            "while true; do echo x > /dev/null; sleep 1; done"],
                           check=True, capture_output=True)
        time.sleep(5)
        out = subprocess.run([IG, "traceloop", "list", "-o", "json", "--remote", remote],
                             capture_output=True, text=True).stdout
        import json
        held = len([t for t in json.loads(out)["traces"] if t["container_name"] in names])
        busy = (rss_kb(d.pid), map_memlock_kb(d.pid))
    finally:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
        d.send_signal(signal.SIGTERM)
        d.wait(60)
    print()
    print(f"`ig daemon --traceloop --traceloop-max-containers {containers + 8}` (4096 records of "
          f"256 bytes a container): idle RSS {idle[0] / 1024:.1f} MiB, BPF maps "
          f"{idle[1] / 1024:.1f} MiB; with {containers} containers running ({held} traced): RSS "
          f"{busy[0] / 1024:.1f} MiB, BPF maps {busy[1] / 1024:.1f} MiB.")


if __name__ == "__main__":
    try:
        main()
        if os.environ.get("BENCH_NO_MEMORY") != "1":
            memory()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
