//! Map-iterator gadgets (GADGET_MAPITER): a test gadget built with `ig image build` and the
//! built-in top_syscall, read every --map-fetch-interval as arrays of rows.

mod common;
mod containers_common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const GADGET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/map_iter");

/// The JSON arrays printed so far (one per line).
fn arrays(run: &Running) -> Vec<Vec<serde_json::Value>> {
    run.lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.as_array().cloned())
        .collect()
}

fn wait_arrays(run: &Running, n: usize, timeout: Duration) -> Vec<Vec<serde_json::Value>> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && arrays(run).len() < n {
        std::thread::sleep(Duration::from_millis(50));
    }
    arrays(run)
}

/// Rows of `pid` over every array, with the sum of a counter field.
fn total_for(arrays: &[Vec<serde_json::Value>], pid: u32, field: &str) -> u64 {
    arrays
        .iter()
        .flatten()
        .filter(|r| r["pid"].as_u64() == Some(pid as u64))
        .map(|r| r[field].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn a_map_iterator_gadget_builds_and_its_key_and_value_fields_are_decoded() {
    let ig = Ig::new();
    let out = build(&ig, Path::new(GADGET), "map_iter:test");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let run = ig.spawn(&[
        "run",
        "map_iter:test",
        "--verify-image=false",
        "--host",
        "-o",
        "json",
        "--map-fetch-interval",
        "300ms",
        "--timeout",
        "120",
    ]);
    // The first array says the program is attached.
    assert!(
        !wait_arrays(&run, 1, Duration::from_secs(60)).is_empty(),
        "no array: {}",
        run.stderr_text()
    );
    const CALLS: u64 = 1000;
    for _ in 0..CALLS {
        // SAFETY: getppid has no arguments and cannot fail.
        unsafe { libc::getppid() };
    }
    let me = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && total_for(&arrays(&run), me, "calls") < CALLS {
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = arrays(&run);
    let (status, _, err) = run.stop();
    assert!(status.success(), "{err}");
    assert!(
        total_for(&all, me, "calls") >= CALLS,
        "calls of pid {me}: {} in {all:?}",
        total_for(&all, me, "calls")
    );
    let row = all
        .iter()
        .flatten()
        .find(|r| r["pid"].as_u64() == Some(me as u64))
        .expect("a row of ours");
    // Key fields (pid, comm) and value fields (calls, a signed and a bool) all decoded.
    assert_eq!(row["seen"], serde_json::json!(true), "{row}");
    assert_eq!(row["last_ret_placeholder"].as_i64(), Some(-7), "{row}");
    let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).expect("comm");
    assert_eq!(row["comm"].as_str(), Some(comm.trim()), "{row}");
    assert_eq!(row["runtime"]["containerName"].as_str(), Some(""), "{row}");
    // Drained: each array holds what happened since the previous one, so no array counts
    // more calls of ours than we made.
    for a in &all {
        assert!(total_for(std::slice::from_ref(a), me, "calls") <= CALLS + 10);
    }
}

#[test]
fn map_fetch_count_prints_exactly_that_many_arrays_then_exits_0() {
    let ig = Ig::new();
    let started = Instant::now();
    let out = ig.output(&[
        "run",
        "top_syscall",
        "--host",
        "-o",
        "json",
        "--map-fetch-count",
        "2",
        "--map-fetch-interval",
        "200ms",
        "--timeout",
        "120",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        assert!(v.is_array(), "{l}");
    }
    assert!(started.elapsed() < Duration::from_secs(100));
}

#[test]
fn top_syscall_counts_a_syscall_storm() {
    let ig = Ig::new();
    let run = ig.spawn(&[
        "run",
        "top_syscall",
        "--host",
        "-o",
        "json",
        "--map-fetch-interval",
        "500ms",
        "--sort",
        "-syscalls",
        "--timeout",
        "120",
    ]);
    assert!(
        !wait_arrays(&run, 1, Duration::from_secs(60)).is_empty(),
        "no array: {}",
        run.stderr_text()
    );
    // dd with 1-byte blocks: a read and a write per block, so at least 2 × COUNT syscalls.
    const COUNT: u64 = 20_000;
    let child = Command::new("dd")
        .args([
            "if=/dev/zero",
            "of=/dev/null",
            "bs=1",
            &format!("count={COUNT}"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dd");
    let pid = child.id();
    let status = child.wait_with_output().expect("dd ends").status;
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && total_for(&arrays(&run), pid, "syscalls") < 2 * COUNT {
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = arrays(&run);
    let (status, _, err) = run.stop();
    assert!(status.success(), "{err}");
    let seen = total_for(&all, pid, "syscalls");
    assert!(seen >= 2 * COUNT, "dd (pid {pid}) made {seen} syscalls");
    let row = all
        .iter()
        .flatten()
        .find(|r| r["pid"].as_u64() == Some(pid as u64))
        .expect("dd's row");
    assert_eq!(row["comm"].as_str(), Some("dd"), "{row}");
    // --sort -syscalls: every array in descending order.
    for a in &all {
        let counts: Vec<u64> = a.iter().filter_map(|r| r["syscalls"].as_u64()).collect();
        assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    }
}

#[test]
fn max_entries_cuts_every_array_and_columns_never_clear_a_pipe() {
    let ig = Ig::new();
    let out = ig.output(&[
        "run",
        "top_syscall",
        "--host",
        "--map-fetch-count",
        "2",
        "--map-fetch-interval",
        "300ms",
        "--max-entries",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    // top_syscall asks for a cleared screen; stdout is a pipe here, so it is not cleared.
    assert!(!text.contains('\x1b'), "{text:?}");
    let tables: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(tables.len(), 2, "{text}");
    for t in tables {
        let lines: Vec<&str> = t.lines().filter(|l| !l.is_empty()).collect();
        assert!(lines[0].contains("SYSCALLS"), "{t}");
        // A header and at most one row (an interval with no syscall at all has none).
        assert!(lines.len() <= 2, "{t}");
    }
}

#[test]
fn bad_sort_and_interval_are_refused_before_anything_loads() {
    let ig = Ig::new();
    let started = Instant::now();
    let out = ig.output(&["run", "top_syscall", "--host", "--sort", "-nope"]);
    assert_clean_failure(&out, "--sort: unknown field \"nope\"");
    assert!(stderr_of(&out).contains("syscalls"), "{}", stderr_of(&out));
    assert!(stdout_of(&out).is_empty());
    assert!(started.elapsed() < Duration::from_secs(30));

    let out = ig.output(&["run", "top_syscall", "--map-fetch-interval", "0s"]);
    assert_clean_failure(&out, "must be more than 0");
    let out = ig.output(&["run", "top_syscall", "--map-fetch-count", "-1"]);
    assert_clean_failure(&out, "expected a whole number");
    // A tracer has no arrays to sort: not one of its flags.
    let out = ig.output(&["run", "trace_exec", "--host", "--sort", "pid"]);
    assert_clean_failure(&out, "--sort");
}

/// `ig image inspect` lists a map iterator's data source: its map, struct and fields (key
/// and value fields, the enriched ones too).
#[test]
fn image_inspect_lists_a_map_iterators_data_source() {
    let ig = Ig::new();
    let out = ig.output(&["image", "inspect", "top_syscall"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.contains("Map iterator syscalls (map stats, struct syscall_key+syscall_stats"),
        "{text}"
    );
    for field in ["pid", "comm", "syscalls", "runtime.containerName"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(field)),
            "{field}: {text}"
        );
    }
    let out = ig.output(&["image", "inspect", "top_syscall", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let arrays = doc["arrays"].as_array().expect("arrays");
    assert_eq!(arrays.len(), 1, "{doc}");
    assert_eq!(arrays[0]["kind"], "map iterator");
    assert_eq!(arrays[0]["map"], "stats");
    let names: Vec<&str> = arrays[0]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        names.contains(&"syscalls") && names.contains(&"pid"),
        "{names:?}"
    );
    assert_eq!(doc["tracers"], serde_json::json!([]));
}
