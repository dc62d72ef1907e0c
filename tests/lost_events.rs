//! Lost events are reported, with their exact count, and the run goes on. Each test gadget
//! (tests/gadgets/lost_*) submits `--burst` events from one BPF program invocation per exec of a
//! process named `--comm`, into a buffer too small for them, while `ig` is stopped (SIGSTOP)
//! so it cannot drain the buffer as BPF fills it: losses are certain, their count known:
//!
//! - `lost_ring`: a one-page ring buffer with Inspektor Gadget's per-CPU `<map>_lost_samples`
//!   counter (their buffer.h's layout);
//! - `lost_ours`: a one-page ring buffer from our `GADGET_TRACER_MAP`, its `.bss` counter;
//! - `lost_perf`: a perf event array; the kernel drops what the per-CPU buffer cannot take and
//!   says how many with a lost record, before the next record it writes on that CPU.
//!
//! ig reports a loss on stderr as `ig: warning: N events lost (buffer MAP was full)`, for
//! columns and JSON output alike.

mod common;
mod daemon_common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use daemon_common::Daemon;

const WAIT: Duration = Duration::from_secs(60);
const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets");
const BURST: usize = 200;

/// Events of a burst that a one-page ring buffer holds: 4096 bytes of 264-byte records
/// (256-byte event and the 8-byte record header).
const RING_CAPACITY: usize = 4096 / 264;

/// Events of a burst that a per-CPU perf buffer of 64 pages (libbpf-rs's default) holds:
/// 4112-byte sample records (8-byte header, 4-byte size, the 4096-byte event, padding).
const PERF_CAPACITY: usize = 64 * 4096 / 4112;

/// The counts of every `ig: warning: N events lost (buffer MAP was full)` line.
fn lost_counts(stderr: &str, map: &str) -> Vec<u64> {
    let tail = format!(" events lost (buffer {map} was full)");
    stderr
        .lines()
        .filter_map(|l| {
            l.strip_prefix("ig: warning: ")?
                .strip_suffix(&tail)?
                .parse()
                .ok()
        })
        .collect()
}

/// `true` copied under `name` (its command name after exec).
fn renamed_true(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy("/bin/true", &p).expect("copy true");
    p
}

/// Runs `bin` pinned to CPU 0 (so every burst of a perf tracer lands in the same per-CPU
/// buffer); returns its pid, which is the events' pid.
fn exec_on_cpu0(bin: &Path) -> u32 {
    let mut cmd = Command::new(bin);
    // SAFETY: sched_setaffinity on the child between fork and exec; no allocation.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let _ = child.wait();
    pid
}

/// One burst while `ig` (pid `reader`) is stopped, so it cannot drain the buffer while BPF
/// fills it: what does not fit is lost, whatever the machine's load. Returns the burst's pid.
fn burst_while_stopped(reader: u32, bin: &Path) -> u32 {
    // SAFETY: signalling the ig process this test started.
    unsafe { libc::kill(reader as i32, libc::SIGSTOP) };
    // kill() returns before every thread has stopped: wait until they all have.
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && !all_threads_stopped(reader) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = exec_on_cpu0(bin);
    // SAFETY: as above.
    unsafe { libc::kill(reader as i32, libc::SIGCONT) };
    pid
}

/// Whether every thread of `pid` is stopped (state `T` in /proc/PID/task/TID/stat).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        })
    })
}

/// Events seen, events reported lost (map `events`) and events submitted (`BURST` per pid with
/// events: every such pid is a burst, also one traced while the run was still warming up),
/// once seen + lost reaches submitted or `WAIT` has passed.
fn settled_counts(run: &Running) -> (usize, usize, usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let counts = per_burst(run);
        let submitted = BURST * counts.len();
        let seen = counts.values().sum::<usize>();
        let lost = lost_counts(&run.stderr_text(), "events")
            .iter()
            .sum::<u64>() as usize;
        if seen + lost >= submitted || Instant::now() > deadline {
            return (seen, lost, submitted);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Events seen per pid (each pid is one burst).
fn per_burst(run: &Running) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for e in run.events() {
        if let Some(pid) = e["pid"].as_u64() {
            *seen.entry(pid).or_insert(0) += 1;
        }
    }
    seen
}

/// Starts `gadget` and runs bursts until `bursts` of them were traced (see [`traced_bursts`]).
fn run_bursts(
    ig: &Ig,
    gadget: &str,
    comm: &str,
    bursts: usize,
    extra: &[&str],
) -> (Running, Vec<u64>) {
    let tag = format!("lost/{gadget}:v1");
    let out = build(ig, &Path::new(SRC).join(gadget), &tag);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mut args = vec![
        "run",
        tag.as_str(),
        "--verify-image=false",
        "--host",
        "--comm",
        comm,
        "-o",
        "json",
        "--timeout",
        "120",
    ];
    args.extend_from_slice(extra);
    let run = ig.spawn(&args);
    let traced = traced_bursts(&run, run.child.id(), comm, bursts);
    (run, traced)
}

/// Runs bursts, each while `reader` (the process that drains the buffer) is stopped, until
/// `bursts` of them were traced, each only after the previous one's events arrived (so the
/// buffer is drained between bursts). Returns the traced bursts' pids, in order.
fn traced_bursts(run: &Running, reader: u32, comm: &str, bursts: usize) -> Vec<u64> {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = renamed_true(dir.path(), comm);
    let mut traced = Vec::new();
    let deadline = Instant::now() + WAIT * 2;
    while traced.len() < bursts && Instant::now() < deadline {
        let pid = u64::from(burst_while_stopped(reader, &bin));
        // Until the tracer is attached an exec is not traced: try the next one.
        let until = Instant::now()
            + if traced.is_empty() {
                Duration::from_millis(500)
            } else {
                WAIT
            };
        while Instant::now() < until && !per_burst(run).contains_key(&pid) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if per_burst(run).contains_key(&pid) {
            traced.push(pid);
        }
    }
    assert_eq!(
        traced.len(),
        bursts,
        "bursts not traced; stderr: {}",
        run.stderr_text()
    );
    traced
}

/// A ring buffer tracer: every burst loses what the ring cannot hold (the reader is stopped
/// meanwhile), the counter is reported until seen + lost
/// is exactly what BPF submitted, and later bursts still arrive.
fn ring_losses_are_counted(gadget: &str, comm: &str) {
    let ig = Ig::new();
    let (run, traced) = run_bursts(&ig, gadget, comm, 3, &[]);
    let (seen, lost, submitted) = settled_counts(&run);
    let counts = per_burst(&run);
    for pid in &traced {
        assert_eq!(counts[pid], RING_CAPACITY, "burst of pid {pid}");
    }
    assert_eq!(
        seen + lost,
        submitted,
        "seen {seen}, lost {lost}; stderr: {}",
        run.stderr_text()
    );
    assert!(lost > 0, "lost {lost}");
    // Every event that came is whole: its seq is within the burst, the comm is ours.
    for e in run.events() {
        assert_eq!(e["comm"], comm, "{e}");
        assert!(e["seq"].as_u64().is_some_and(|s| s < BURST as u64), "{e}");
    }
    let (status, _, stderr) = run.stop();
    assert!(status.success() || status.code().is_none(), "{stderr}");
}

#[test]
fn ring_buffer_losses_from_their_lost_samples_map() {
    ring_losses_are_counted("lost_ring", "iglost-ring");
}

#[test]
fn ring_buffer_losses_from_our_bss_counter() {
    ring_losses_are_counted("lost_ours", "iglost-ours");
}

/// A perf buffer tracer: the kernel's lost records are reported with their counts. Each burst's
/// loss is known once the next record is written on that CPU, so after N bursts (all on CPU 0)
/// the losses of the first N-1 are reported exactly.
#[test]
fn perf_buffer_losses_from_the_kernels_lost_records() {
    let ig = Ig::new();
    let (run, traced) = run_bursts(&ig, "lost_perf", "iglost-perf", 3, &[]);
    let deadline = Instant::now() + WAIT;
    // every burst but the last one (a pid traced while warming up included)
    let last = *traced.last().expect("bursts");
    let expected = |counts: &BTreeMap<u64, usize>| -> usize {
        counts
            .iter()
            .filter(|(p, _)| **p != last)
            .map(|(_, n)| BURST - n)
            .sum()
    };
    let mut lost;
    loop {
        lost = lost_counts(&run.stderr_text(), "events")
            .iter()
            .sum::<u64>() as usize;
        if lost >= expected(&per_burst(&run)) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let counts = per_burst(&run);
    for pid in &traced {
        let n = counts[pid];
        assert!(
            (PERF_CAPACITY - 1..=PERF_CAPACITY + 1).contains(&n),
            "burst of pid {pid}: {n} events"
        );
    }
    assert_eq!(
        lost,
        expected(&counts),
        "{counts:?}; stderr: {}",
        run.stderr_text()
    );
    assert!(lost > 0, "lost {lost}");
    let (status, _, stderr) = run.stop();
    assert!(status.success() || status.code().is_none(), "{stderr}");
}

/// Losses are said in columns output too (on stderr; the table goes on), and a burst that
/// fits (`--burst 10`) loses nothing.
#[test]
fn losses_in_columns_output_and_none_when_it_fits() {
    let ig = Ig::new();
    let out = build(&ig, &Path::new(SRC).join("lost_ours"), "lost/lost_ours:v1");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = renamed_true(dir.path(), "iglost-cols");
    for (burst, loses) in [("200", true), ("10", false)] {
        let run = ig.spawn(&[
            "run",
            "lost/lost_ours:v1",
            "--verify-image=false",
            "--host",
            "--comm",
            "iglost-cols",
            "--burst",
            burst,
            "--fields",
            "comm,seq",
            "--timeout",
            "120",
        ]);
        // rows: the comm and a seq; wait for the burst's last row that can come
        let last = if loses { RING_CAPACITY - 1 } else { 9 };
        let want = |l: &String| {
            l.starts_with("iglost-cols") && l.trim_end().ends_with(&format!(" {last}"))
        };
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline && !run.lines().iter().any(want) {
            burst_while_stopped(run.child.id(), &bin);
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(run.lines().iter().any(want), "{:?}", run.lines());
        let lines = run.lines();
        assert!(lines[0].starts_with("COMM"), "{lines:?}");
        if loses {
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline && lost_counts(&run.stderr_text(), "events").is_empty()
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            let counts = lost_counts(&run.stderr_text(), "events");
            assert!(
                counts.iter().all(|&n| n >= (BURST - RING_CAPACITY) as u64) && !counts.is_empty(),
                "{counts:?}; stderr: {}",
                run.stderr_text()
            );
            let (status, _, stderr) = run.stop();
            assert!(status.success() || status.code().is_none(), "{stderr}");
        } else {
            let (status, _, stderr) = run.stop();
            assert!(status.success() || status.code().is_none(), "{stderr}");
            assert!(!stderr.contains("events lost"), "{stderr}");
        }
    }
}

/// Through the daemon: the run's losses reach the client (`ig run --remote` says them as a
/// local run does) and `ig list` counts a detached instance's. The daemon is the reader that
/// is stopped.
#[test]
fn losses_through_the_daemon_reach_the_client_and_ig_list() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let dir = Path::new(SRC).join("lost_ours");
    let o = d.store_cmd(&[
        "image",
        "build",
        dir.to_str().expect("utf8"),
        "-t",
        "lost/lost_ours:v1",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let run = d.spawn(&[
        "run",
        "lost/lost_ours:v1",
        "--verify-image=false",
        "--host",
        "--comm",
        "iglost-daemon",
        "-o",
        "json",
        "--timeout",
        "120",
    ]);
    let traced = traced_bursts(&run, d.pid(), "iglost-daemon", 2);
    let (seen, lost, submitted) = settled_counts(&run);
    assert_eq!(
        seen + lost,
        submitted,
        "seen {seen}, lost {lost}; stderr: {}",
        run.stderr_text()
    );
    let counts = per_burst(&run);
    for pid in &traced {
        assert_eq!(counts[pid], RING_CAPACITY, "burst of pid {pid}");
    }
    let (status, _, stderr) = run.stop();
    assert!(status.success() || status.code().is_none(), "{stderr}");

    // A detached instance: `ig list` counts its losses, exactly.
    let o = d.ig(&[
        "run",
        "lost/lost_ours:v1",
        "--verify-image=false",
        "--detach",
        "--name",
        "lossy",
        "--host",
        "--comm",
        "iglost-detach",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let attach = d.spawn(&["attach", "lossy", "-o", "json"]);
    traced_bursts(&attach, d.pid(), "iglost-detach", 2);
    let bursts = per_burst(&attach).len() as u64;
    let counters = || -> (u64, u64) {
        let o = d.ig(&["list", "-o", "json"]);
        let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let i = list
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == "lossy"))
            .cloned()
            .unwrap_or_default();
        (
            i["events"].as_u64().unwrap_or(0),
            i["lost"].as_u64().unwrap_or(0),
        )
    };
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && {
        let (events, lost) = counters();
        events + lost < bursts * BURST as u64
    } {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (events, lost) = counters();
    assert_eq!(
        events + lost,
        bursts * BURST as u64,
        "events {events}, lost {lost}"
    );
    assert_eq!(
        events,
        bursts * RING_CAPACITY as u64,
        "events {events}, lost {lost}"
    );
    drop(attach);
    let o = d.ig(&["delete", "lossy"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
}
