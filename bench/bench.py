#!/usr/bin/env python3
"""Exec-storm benchmark: ig's trace_exec against libbpf-tools execsnoop and bpftrace.

Called by bench/run.sh (which builds the storm, the no-op target and ig). One invocation runs
ROUNDS interleaved rounds of every configuration, then the start-to-first-event, idle-latency and
overflow checks, and prints a Markdown table.

Every traced storm is paired with an untraced storm run just before it, in the same place (host
or container): this VM's speed drifts by 10-20% within a minute, much more than the 5% measured,
and a ratio of neighbours cancels most of the drift where a ratio of medians does not.

Measures, per configuration:
  rate      execs/s of the storm (its own wall clock); the ratio is the median over the rounds of
            traced rate / the paired untraced rate
  captured  output lines naming the storm's target / execs done (n/a when output is /dev/null)
  cpu/ev    on-CPU time of the tracer's threads (see proc_cpu_s) over the storm and its drain,
            per exec
  bpf/exec  run time of the tracer's BPF programs over the storm (run_time_ns), per exec
  added     (cpu/ev + bpf/exec) / the CPU an exec of the paired untraced storm took (busy
            jiffies of /proc/stat per exec): the tracer's cost, steadier than wall rates
  rss       VmHWM of the tracer (/proc/PID/status) after the storm
  daemon    ig-remote rows only: the `ig daemon` serving the run; its CPU is counted in cpu/ev
            and added, and shown on its own; its RSS idle and with 20 detached instances is
            printed. ig-remote-relay runs the client with IG_REMOTE_PIPE=0: the lines cross the
            socket and the client writes them, instead of coming through a pipe
  cache     ig-parent only: the process cache's size, capacity and evictions (IG_STATS) at the end
  first     launch of the tracer to the first line naming a marker exec (separate phase)
"""

import os
import json
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "bench")
IG = os.environ.get("IG", os.path.join(ROOT, "target", "release", "ig"))
NOOP = os.path.join(BIN, "igbnoop")
STORM = os.path.join(BIN, "igbstorm")
EXECS = int(os.environ.get("BENCH_EXECS", "20000"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
# A trace_exec record of the storm is ~150 bytes: 60,000 of them do not fit in a 4 MiB ring.
OVERFLOW_EXECS = int(os.environ.get("BENCH_OVERFLOW_EXECS", str(3 * EXECS)))
FIRST_TRIALS = int(os.environ.get("BENCH_FIRST_TRIALS", "3"))
CONTAINER = "igbench"
IMAGE = os.environ.get("BENCH_IMAGE", "ig-test/busybox:latest")
# Time from launch to the storm. One exec is made 0.2 s after launch: on this machine pid 1's
# mount namespace cannot be read, so ig resolves the host's on its first event, holding events for
# up to 1.5 s; the warm-up exec keeps that out of the measured storm (first-event times show it).
WARMUP = {"ig": 2.2, "execsnoop": 1.5, "bpftrace": 3.0}
DRAIN = 0.6
TICK = os.sysconf("SC_CLK_TCK")
TMP = tempfile.mkdtemp(prefix="igbench.")
# How the storm's own exec shows in each tracer's output (its argv names the target too).
# (its argv[0] is the storm's path; the no-op's lines only name it as the parent's comm)
STORM_LINE = [b"/igbstorm"]
# ig-remote: one daemon for the whole benchmark (started by run_all).
DAEMON = {"proc": None, "remote": "unix://" + os.path.join(TMP, "ig.sock")}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- tracers -------------------------------------------------------------------------------

def tracer_cmd(kind, line_buffered=False):
    """The command of a tracer, and whether its output is kept (False: /dev/null)."""
    lb = ["stdbuf", "-oL"] if line_buffered else []
    if kind == "ig-json":
        # → file like ig-remote, so the two rows pay the same writes and both count capture
        return [IG, "run", "trace_exec", "--host", "-o", "json"], True
    if kind == "ig-columns":
        return [IG, "run", "trace_exec", "--host"], True
    if kind in ("ig-remote", "ig-remote-relay"):
        return [IG, "run", "trace_exec", "--host", "-o", "json", "--remote", DAEMON["remote"]], True
    if kind == "ig-parent":
        # lineage: the process cache and parent.* on every event (whole records, as --paths)
        return [IG, "run", "trace_exec", "--host", "-o", "json", "--parent"], True
    if kind == "ig-container":
        return [IG, "run", "trace_exec", "-c", CONTAINER], True
    if kind == "execsnoop":
        return lb + ["/usr/sbin/execsnoop"], True
    if kind == "bpftrace":
        return lb + ["bpftrace", "/usr/sbin/execsnoop.bt"], True
    raise ValueError(kind)


def tracer_env(kind):
    """ig-remote-relay: the client does not pass its stdout, the lines cross the socket."""
    if kind == "ig-parent":
        return dict(os.environ, IG_STATS="1")
    if kind == "ig-remote-relay":
        return dict(os.environ, IG_REMOTE_PIPE="0")
    return None


def warmup_of(kind):
    return WARMUP["ig" if kind.startswith("ig") else kind]


def proc_cpu_s(pid):
    """CPU seconds of a process so far: the sum of its threads' on-CPU time in ns
    (/proc/PID/task/*/schedstat, first field). utime+stime (/proc/PID/stat) count in ticks of
    10 ms, half a microsecond per event of a 20,000-exec storm: too coarse to compare tracers
    that differ by less. A thread that exits between two reads takes its time with it, so the
    tick count is used when it is larger."""
    ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ns / 1e9, ticks / TICK


def cpu_delta(before, after):
    """Seconds between two proc_cpu_s readings (see there for which count is used)."""
    precise = after[0] - before[0]
    coarse = after[1] - before[1]
    return coarse if coarse > precise + 2 / TICK else precise


def proc_hwm_kb(pid, field="VmHWM"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def start_daemon():
    state = os.path.join(TMP, "state")
    DAEMON["proc"] = subprocess.Popen(
        [IG, "daemon", "--socket", os.path.join(TMP, "ig.sock"), "--state-dir", state,
         "--runtimes", "none"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if subprocess.run([IG, "list", "--remote", DAEMON["remote"]], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("ig daemon did not answer")


def daemon_rss(instances=20):
    """The daemon's VmRSS idle, then with `instances` detached trace_exec instances."""
    pid = DAEMON["proc"].pid
    idle = proc_hwm_kb(pid, "VmRSS")
    names = [f"bench{i:02d}" for i in range(instances)]
    for n in names:
        subprocess.run([IG, "run", "trace_exec", "--host", "--detach", "--name", n,
                        "--remote", DAEMON["remote"]], check=True, capture_output=True)
    for _ in range(50):
        subprocess.run([NOOP, "rss"])
    time.sleep(1)
    busy = proc_hwm_kb(pid, "VmRSS")
    subprocess.run([IG, "delete", *names, "--remote", DAEMON["remote"]], capture_output=True)
    return idle, busy


def tracer_pid(popen):
    """The tracer's own pid (stdbuf execs the tracer in place, so it is the same process)."""
    return popen.pid


def stop(popen, timeout=20):
    if popen.poll() is None:
        popen.send_signal(signal.SIGINT)
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def count_lines(path, *needles, storm_line=STORM_LINE):
    """Lines holding every needle; the storm's own exec (its argv names the target) is not one.
    storm_line None: JSON lines whose parent.* names the storm; its own line is told by comm."""
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if storm_line is None:  # JSON with parent.*: the storm's own line is its first comm
                own = line.split(b'"comm":', 1)[-1].startswith(b'"igbstorm"')
            else:
                own = any(m in line for m in storm_line)
            if all(x in line for x in needles) and not own and b"warmup" not in line:
                n += 1
    return n


# --- the storm -----------------------------------------------------------------------------

def cpu_jiffies():
    """(all, steal, busy) jiffies of every CPU so far, from /proc/stat; busy is user, nice,
    system, irq and softirq time."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[7], v[0] + v[1] + v[2] + v[5] + v[6]


def bpf_run_ns():
    """Time spent in every loaded BPF program so far (kernel.bpf_stats_enabled is on during
    the benchmark): the tracers' programs are the only ones this machine runs."""
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True)
    try:
        return sum(p.get("run_time_ns", 0) for p in json.loads(out.stdout or "[]"))
    except ValueError:
        return 0


def storm(in_container, token, execs=EXECS):
    """Runs the storm; every exec of the no-op carries `token` as its argument, so a tracer's
    lines for this storm are told from any other exec. Returns (execs, rate, steal fraction)."""
    if in_container:
        cmd = ["docker", "exec", CONTAINER, "/bench/igbstorm", str(execs), str(WORKERS),
               "/bench/igbnoop", token]
    else:
        # run from its directory: a short argv[0] keeps the token within the args column
        cmd = [STORM, str(execs), str(WORKERS), "./igbnoop", token]
    all0, steal0, busy0 = cpu_jiffies()
    bpf0 = bpf_run_ns()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=BIN)
    bpf1 = bpf_run_ns()
    all1, steal1, busy1 = cpu_jiffies()
    m = re.search(r"execs=(\d+) failed=(\d+) seconds=([\d.]+) rate=([\d.]+)", out.stdout)
    if not m:
        raise RuntimeError(f"storm failed: {out.stdout} {out.stderr}")
    steal = (steal1 - steal0) / max(all1 - all0, 1)
    execs = int(m.group(1))
    cost = {"busy_s": (busy1 - busy0) / TICK / max(execs, 1), "bpf_s": (bpf1 - bpf0) / 1e9 / max(execs, 1)}
    return execs, float(m.group(4)), steal, cost


def run_config(kind, rnd):
    in_container = kind.endswith("container")
    token = f"s{rnd}{kind.replace('-', '')[:6]}"
    if kind.startswith("untraced"):
        execs, rate, steal, cost = storm(in_container, token)
        return {"rate": rate, "execs": execs, "steal": steal, **cost}
    cmd, kept = tracer_cmd(kind)
    out_path = os.path.join(TMP, f"{kind}.{rnd}.out") if kept else os.devnull
    err_path = os.path.join(TMP, f"{kind}.{rnd}.err")
    env = tracer_env(kind)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
    time.sleep(0.2)
    subprocess.run([NOOP, "warmup"])
    time.sleep(warmup_of(kind) - 0.2)
    if p.poll() is not None:
        raise RuntimeError(f"{kind} exited early: {open(err_path).read()}")
    pid = tracer_pid(p)
    dpid = DAEMON["proc"].pid if kind.startswith("ig-remote") else None
    cpu0 = proc_cpu_s(pid)
    dcpu0 = proc_cpu_s(dpid) if dpid else (0, 0)
    execs, rate, steal, cost = storm(in_container, token)
    time.sleep(DRAIN)
    cpu1 = proc_cpu_s(pid)
    dcpu1 = proc_cpu_s(dpid) if dpid else (0, 0)
    hwm = proc_hwm_kb(pid)
    stop(p)
    res = {"rate": rate, "execs": execs, "steal": steal,
           "cpu_s": cpu_delta(cpu0, cpu1) + cpu_delta(dcpu0, dcpu1), "rss_kb": hwm, **cost}
    if dpid:
        res["daemon_cpu_s"] = cpu_delta(dcpu0, dcpu1)
    if kind == "ig-parent":
        # IG_STATS: the process cache must stay bounded through the storm
        with open(err_path, errors="replace") as f:
            m = re.search(r"process cache entries (\d+) \(capacity (\d+)\), evictions (\d+)", f.read())
        if m:
            res["cache"] = tuple(int(x) for x in m.groups())
    if kept:
        needles = [b"igbnoop", token.encode()] + ([CONTAINER.encode()] if in_container else [])
        # --parent: every child's line names the storm in parent.args; its own line is its comm
        storm_line = None if kind == "ig-parent" else STORM_LINE
        res["captured"] = count_lines(out_path, *needles, storm_line=storm_line)
        os.unlink(out_path)
    return res


# --- start to first event --------------------------------------------------------------------

def first_event(kind):
    """Launch → first line naming a marker exec, while markers are exec'd every ~10 ms."""
    in_container = kind.endswith("container")
    cmd, _ = tracer_cmd(kind, line_buffered=True)
    out_path = os.path.join(TMP, f"first.{kind}.out")
    loop = "while :; do %s marker; usleep 10000 2>/dev/null || sleep 0.01; done"
    if in_container:
        # `docker exec`'s client going away does not end the loop: it is killed by its pid.
        marker = subprocess.Popen(["docker", "exec", CONTAINER, "sh", "-c",
                                   "echo $$ > /tmp/marker.pid; " + loop % "/bench/igbnoop"])
    else:
        marker = subprocess.Popen(["sh", "-c", loop % NOOP])
    time.sleep(0.5)
    with open(out_path, "wb") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
    elapsed = None
    with open(out_path, "rb") as f:
        buf = b""
        while time.monotonic() - t0 < 15:
            chunk = f.read()
            if chunk:
                buf += chunk
                if b"marker" in buf:
                    elapsed = time.monotonic() - t0
                    break
            else:
                time.sleep(0.001)
    stop(p)
    if in_container:
        subprocess.run(["docker", "exec", CONTAINER, "sh", "-c", "kill $(cat /tmp/marker.pid)"],
                       capture_output=True)
    marker.kill()
    marker.wait()
    os.unlink(out_path)
    return elapsed


# --- idle latency ----------------------------------------------------------------------------

def idle_latency(trials=20):
    """Exec → line on ig's stdout (a pipe), one exec at a time on an otherwise idle machine."""
    p = subprocess.Popen([IG, "run", "trace_exec", "--host", "-o", "json"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, bufsize=0)
    fd = p.stdout.fileno()
    buf = b""

    def wait_for(token, deadline):
        nonlocal buf
        while time.monotonic() < deadline:
            if token in buf:
                buf = buf[buf.index(token):]
                buf = buf[buf.find(b"\n") + 1:] if b"\n" in buf else b""
                return time.monotonic()
            import select
            r, _, _ = select.select([fd], [], [], 0.01)
            if r:
                buf += os.read(fd, 1 << 16)
        return None

    # ready once a marker shows up
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        subprocess.run([NOOP, "ready"])
        if wait_for(b"ready", time.monotonic() + 0.1):
            break
    lat = []
    for i in range(trials):
        time.sleep(random.uniform(0.1, 0.3))
        token = f"lat{i:03d}x".encode()
        t0 = time.monotonic()
        subprocess.run([NOOP, token.decode()])
        t1 = wait_for(token, t0 + 2)
        lat.append(None if t1 is None else t1 - t0)
    stop(p)
    return lat


# --- overflow --------------------------------------------------------------------------------

def overflow(in_container):
    """Stops ig (SIGSTOP) for a whole storm of OVERFLOW_EXECS, more records than its 4 MiB ring
    holds, and checks the loss report. In the container (-c), BPF drops every other exec of the
    machine before the ring, so captured + lost can be compared with the storm exactly (+1: the
    storm's own exec)."""
    out_path = os.path.join(TMP, "overflow.out")
    err_path = os.path.join(TMP, "overflow.err")
    sel = ["-c", CONTAINER] if in_container else ["--host"]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen([IG, "run", "trace_exec", *sel, "-o", "json"], stdout=out, stderr=err)
    time.sleep(1.5)
    os.kill(p.pid, signal.SIGSTOP)
    execs, _, _, _ = storm(in_container, "overflow", OVERFLOW_EXECS)
    os.kill(p.pid, signal.SIGCONT)
    time.sleep(2.5)
    stop(p)
    err = open(err_path).read()
    lost = sum(int(m) for m in re.findall(r"(\d+) events lost", err))
    captured = count_lines(out_path, b"igbnoop", b"overflow")
    import collections
    comms = collections.Counter()
    with open(out_path, "rb") as f:
        for line in f:
            try:
                comms[json.loads(line).get("comm")] += 1
            except ValueError:
                comms["(unparsable)"] += 1
    total = sum(comms.values())
    log(f"overflow: events by comm: {comms.most_common(5)}")
    os.unlink(out_path)
    return {"where": "container (-c)" if in_container else "host", "execs": execs, "captured": captured, "all_lines": total, "lost": lost,
            "stderr": [l for l in err.splitlines() if "lost" in l]}


# --- main ------------------------------------------------------------------------------------

def setup_container():
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True)
    subprocess.run(["docker", "run", "-d", "--name", CONTAINER, "-v", f"{BIN}:/bench:ro", IMAGE,
                    "sleep", "100000"], check=True, capture_output=True)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    random.seed(6)
    stats = "/proc/sys/kernel/bpf_stats_enabled"
    with open(stats) as f:
        stats_before = f.read().strip()
    with open(stats, "w") as f:
        f.write("1")
    try:
        run_all()
    finally:
        with open(stats, "w") as f:
            f.write(stats_before)


def run_all():
    skip_container = os.environ.get("BENCH_NO_CONTAINER") == "1"
    if not skip_container:
        setup_container()
    configs = ["untraced", "ig-json", "ig-columns", "ig-remote", "ig-remote-relay", "ig-parent",
               "execsnoop", "bpftrace"]
    if not skip_container:
        configs += ["untraced-container", "ig-container"]
    only = os.environ.get("BENCH_ONLY")
    if only:
        configs = [c for c in configs if c in only.split(",") or c.startswith("untraced")]
    results = {c: [] for c in configs}
    t_start = time.monotonic()
    if any(c.startswith("ig-remote") for c in configs):
        start_daemon()
    daemon_mem = None
    try:
        traced = [c for c in configs if not c.startswith("untraced")]
        for rnd in range(ROUNDS):
            order = traced[:]
            random.shuffle(order)
            for kind in order:
                base_kind = "untraced-container" if kind.endswith("container") else "untraced"
                u = run_config(base_kind, rnd)
                results[base_kind].append(u)
                r = run_config(kind, rnd)
                r["ratio"] = r["rate"] / u["rate"]
                # the same, on the CPU time the VM was given (steal time taken out)
                r["ratio_ns"] = r["ratio"] * (1 - u["steal"]) / (1 - r["steal"])
                # CPU the tracer adds to an exec (its process + its BPF programs), against the
                # CPU an untraced exec of the paired storm took: both measured in the same
                # minute, so the VM's speed drifts cancel out much better than in wall rates
                r["added"] = (r["cpu_s"] / r["execs"] + r["bpf_s"]) / u["busy_s"]
                results[kind].append(r)
                extra = ""
                if "cpu_s" in r:
                    extra = f" cpu={r['cpu_s']:.2f}s rss={r['rss_kb']}kB"
                if "captured" in r:
                    extra += f" captured={r['captured']}/{r['execs']}"
                if "daemon_cpu_s" in r:
                    extra += f" daemon-cpu={r['daemon_cpu_s']:.2f}s"
                if "cache" in r:
                    extra += " cache=%d/%d evictions=%d" % r["cache"]
                extra += (f" bpf={1e9 * r['bpf_s']:.0f}ns/exec untraced-cpu={1e6 * u['busy_s']:.0f}us/exec "
                          f"added={100 * r['added']:.1f}%")
                log(f"round {rnd + 1}/{ROUNDS} {kind:19s} rate={r['rate']:8.0f}/s "
                    f"(untraced just before {u['rate']:8.0f}/s, ratio {100 * r['ratio']:.1f}%, "
                    f"steal {100 * u['steal']:.0f}%/{100 * r['steal']:.0f}%, without steal "
                    f"{100 * r['ratio_ns']:.1f}%){extra}")
        first = {}
        for kind in configs:
            if kind.startswith("untraced"):
                continue
            first[kind] = [first_event(kind) for _ in range(FIRST_TRIALS)]
            log(f"first event {kind:14s} {['%.0f ms' % (x * 1e3) if x else 'none' for x in first[kind]]}")
        lat = idle_latency() if any(c.startswith("ig") for c in configs) else []
        if lat:
            log(f"idle latency ms: {[round(x * 1e3) if x else None for x in lat]}")
        ov = overflow(not skip_container) if any(c.startswith("ig") for c in configs) else None
        if ov:
            log(f"overflow: {ov}")
        if DAEMON["proc"]:
            daemon_mem = daemon_rss()
            log(f"daemon rss: idle {daemon_mem[0]} kB, with 20 instances {daemon_mem[1]} kB")
    finally:
        if DAEMON["proc"]:
            DAEMON["proc"].send_signal(signal.SIGTERM)
            DAEMON["proc"].wait(30)
        if not skip_container:
            subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True)

    # --- report ---
    names = {
        "untraced": "untraced (host)",
        "ig-json": "`ig run trace_exec --host -o json` → file",
        "ig-columns": "`ig run trace_exec --host` (columns) → file",
        "ig-remote": "`ig run trace_exec --host -o json --remote` (daemon + client) → file",
        "ig-remote-relay": "same, `IG_REMOTE_PIPE=0` (lines over the socket, written by the client) → file",
        "ig-parent": "`ig run trace_exec --host -o json --parent` (process cache) → file",
        "execsnoop": "libbpf-tools `execsnoop` → file",
        "bpftrace": "`bpftrace execsnoop.bt` → file",
        "untraced-container": "untraced (in a container)",
        "ig-container": "`ig run trace_exec -c igbench` (columns, enriched) → file",
    }
    print()
    print(f"Exec storm: {EXECS} spawns of a static no-op from {WORKERS} workers, "
          f"{ROUNDS} interleaved rounds, each traced storm paired with an untraced one run just "
          f"before it; medians ({time.monotonic() - t_start:.0f} s in all).")
    print()
    print("| configuration | execs/s | rate vs untraced (min–max) | same, steal time removed "
          "| captured / execs | tracer CPU per event | BPF time per exec "
          "| CPU added per exec (min–max) | tracer peak RSS | start → first event |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind in configs:
        rs = results[kind]
        if not rs:
            # An untraced row of a place BENCH_ONLY left without tracers (the container's).
            continue
        rate = med([r["rate"] for r in rs])
        if kind.startswith("untraced"):
            lo, hi = min(r["rate"] for r in rs), max(r["rate"] for r in rs)
            steal = med([r["steal"] for r in rs])
            busy = med([r["busy_s"] for r in rs])
            print(f"| {names[kind]} | {rate:,.0f} | 100% ({100 * lo / rate:.0f}–{100 * hi / rate:.0f}% "
                  f"of the median) | 100% (median steal {100 * steal:.0f}%) | | | "
                  f"| {1e6 * busy:.0f} µs of CPU per exec | | |")
            continue
        ratios = [r["ratio"] for r in rs]
        ratio_txt = f"{100 * med(ratios):.1f}% ({100 * min(ratios):.0f}–{100 * max(ratios):.0f}%)"
        ratios = [r["ratio_ns"] for r in rs]
        ratio_txt += f" | {100 * med(ratios):.1f}% ({100 * min(ratios):.0f}–{100 * max(ratios):.0f}%)"
        caps = [r["captured"] / r["execs"] for r in rs if "captured" in r]
        cap = f"{100 * min(caps):.2f}% (min)" if caps else "n/a (/dev/null)"
        cpu = med([r["cpu_s"] / r["execs"] for r in rs])
        rss = med([r["rss_kb"] for r in rs])
        f = med(first.get(kind, []))
        ftxt = f"{f * 1e3:.0f} ms" if f is not None else "none"
        bpf = med([r["bpf_s"] for r in rs])
        added = [r["added"] for r in rs]
        added_txt = f"{100 * med(added):.1f}% ({100 * min(added):.1f}–{100 * max(added):.1f}%)"
        print(f"| {names[kind]} | {rate:,.0f} | {ratio_txt} | {cap} | {cpu * 1e6:.1f} µs "
              f"| {bpf * 1e6:.1f} µs | {added_txt} | {rss / 1024:.1f} MiB | {ftxt} |")
    print()
    if lat:
        ok = [x for x in lat if x is not None]
        print(f"Idle latency (exec → JSON line on ig's stdout, {len(lat)} execs): median "
              f"{1e3 * statistics.median(ok):.0f} ms, max {1e3 * max(ok):.0f} ms, "
              f"missing {len(lat) - len(ok)}.")
    if daemon_mem:
        dc = med([r["daemon_cpu_s"] / r["execs"] for r in results.get("ig-remote", [])] or [0])
        dr = med([r["daemon_cpu_s"] / r["execs"] for r in results.get("ig-remote-relay", [])] or [0])
        print(f"ig daemon: {1e6 * dc:.1f} µs of daemon CPU per event of the remote row's tracer CPU "
              f"({1e6 * dr:.1f} µs with IG_REMOTE_PIPE=0); "
              f"RSS {daemon_mem[0] / 1024:.1f} MiB idle, {daemon_mem[1] / 1024:.1f} MiB with 20 detached "
              f"trace_exec instances.")
    if ov:
        print(f"Overflow ({ov['where']}; ig stopped with SIGSTOP for a whole storm): {ov['execs']} execs, "
              f"{ov['captured']} captured, {ov['lost']} reported lost on stderr "
              f"({ov['all_lines']} events in all; all + lost = {ov['all_lines'] + ov['lost']}); "
              f"stderr: {ov['stderr'][:2]}")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
