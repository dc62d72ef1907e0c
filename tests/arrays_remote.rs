//! Array gadgets (map and BPF iterators) through a real `ig daemon`: `ig run --remote`
//! prints what a local run prints (a JSON array per read, a table per read), takes the array
//! flags (--sort, --max-entries, --map-fetch-count, --map-fetch-interval), and a detached
//! instance of one is attached to as arrays.

mod common;
mod containers_common;
mod daemon_common;

use std::time::{Duration, Instant};

use common::*;
use containers_common::{setup, unique, DockerContainer};
use daemon_common::{output_within, wait_until, Daemon};

const LIMIT: Duration = Duration::from_secs(180);

/// Every line of `text` as a JSON array.
fn json_arrays(text: &str) -> Vec<Vec<serde_json::Value>> {
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
                .as_array()
                .cloned()
                .unwrap_or_else(|| panic!("not an array: {l}"))
        })
        .collect()
}

fn pids(rows: &[serde_json::Value]) -> Vec<u64> {
    rows.iter().filter_map(|r| r["pid"].as_u64()).collect()
}

/// A busybox container whose processes are `sh` and two `sleep`s, once both sleeps run.
fn container_with_two_sleeps(name: &str) -> DockerContainer {
    let c =
        DockerContainer::run_script(name, "sleep 1001 & sleep 1002 & wait").expect("docker run");
    let pid = c.pid().expect("pid");
    let ready = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .count()
            >= 2
    });
    assert!(ready, "the container's sleeps did not start");
    c
}

fn remote(daemon: &Daemon, args: &[&str]) -> std::process::Output {
    output_within(&mut daemon.cmd(args), LIMIT)
}

#[test]
fn snapshot_process_through_the_daemon_prints_what_a_local_run_prints() {
    setup();
    let name = unique("arr-remote");
    let c = container_with_two_sleeps(&name);
    let init = c.pid().expect("pid") as u64;
    let daemon = Daemon::start(&[]);
    let ig = Ig::new();
    let args = |output: &'static str| -> Vec<String> {
        [
            "run",
            "snapshot_process",
            "-c",
            &name,
            "--sort",
            "pid",
            "-o",
            output,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    for output in ["json", "jsonpretty", "columns", "yaml"] {
        let a = args(output);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let local = ig.output(&a);
        assert!(local.status.success(), "{}", stderr_of(&local));
        let far = remote(&daemon, &a);
        assert!(far.status.success(), "-o {output}: {}", stderr_of(&far));
        // The container's processes do not change between the two reads: the same bytes.
        assert_eq!(
            stdout_of(&far),
            stdout_of(&local),
            "-o {output}: remote (left) and local (right) differ"
        );
        assert!(!stdout_of(&far).is_empty(), "-o {output}");
    }
    // And what they print is the container's processes, enriched.
    let out = remote(
        &daemon,
        &["run", "snapshot_process", "-c", &name, "-o", "json"],
    );
    let arrays = json_arrays(&stdout_of(&out));
    assert_eq!(arrays.len(), 1, "one snapshot: {arrays:?}");
    let rows = &arrays[0];
    let mut comms: Vec<&str> = rows.iter().filter_map(|r| r["comm"].as_str()).collect();
    comms.sort();
    assert_eq!(comms, ["sh", "sleep", "sleep"], "{rows:?}");
    for r in rows {
        assert_eq!(r["runtime"]["containerName"].as_str(), Some(name.as_str()));
        assert_eq!(r["runtime"]["runtimeName"].as_str(), Some("docker"));
        assert_eq!(r["runtime"]["containerPid"].as_u64(), Some(init), "{r}");
    }
    assert!(pids(rows).contains(&init));
}

#[test]
fn sort_max_entries_and_bad_array_flags_through_the_daemon() {
    let daemon = Daemon::start(&[]);
    // -o json is written by the daemon (JSON lines); -o jsonpretty from the encoded array.
    for output in ["json", "jsonpretty"] {
        let out = remote(
            &daemon,
            &[
                "run",
                "snapshot_process",
                "--host",
                "--sort",
                "-pid",
                "--max-entries",
                "4",
                "-o",
                output,
            ],
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(stdout_of(&out).trim()).expect("one JSON array");
        let p = pids(&rows);
        assert_eq!(p.len(), 4, "-o {output}: {p:?}");
        assert!(p.windows(2).all(|w| w[0] > w[1]), "descending: {p:?}");
    }
    let out = remote(
        &daemon,
        &[
            "run",
            "snapshot_process",
            "--host",
            "--sort",
            "pid",
            "--max-entries",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "a header and 3 rows: {text}");
    assert!(
        lines[0].contains("COMM") && lines[0].contains("PPID"),
        "{text}"
    );
    // No such container: an empty snapshot, as a local run prints it.
    let none = unique("arr-none");
    let out = remote(
        &daemon,
        &["run", "snapshot_process", "-c", &none, "-o", "json"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "[]\n");
    // --max-entries 0: an empty array, still printed.
    let out = remote(
        &daemon,
        &[
            "run",
            "snapshot_process",
            "--host",
            "--max-entries",
            "0",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "[]\n");

    // Bad flags: the daemon's checks, told as a local run tells them, nothing on stdout.
    let out = remote(
        &daemon,
        &["run", "snapshot_process", "--host", "--sort", "pid,-bogus"],
    );
    assert_clean_failure(&out, "--sort: unknown field \"bogus\"");
    assert!(stdout_of(&out).is_empty());
    let out = remote(
        &daemon,
        &["run", "top_syscall", "--map-fetch-interval", "0s"],
    );
    assert_clean_failure(&out, "must be more than 0");
    let out = remote(
        &daemon,
        &[
            "run",
            "snapshot_process",
            "--host",
            "--map-fetch-count",
            "2",
        ],
    );
    assert_clean_failure(&out, "needs a --map-fetch-interval");
    // A tracer has no arrays: the flags are not offered.
    let out = remote(&daemon, &["run", "trace_exec", "--host", "--sort", "pid"]);
    assert_clean_failure(&out, "unexpected argument '--sort'");
    // The daemon keeps serving.
    assert!(daemon.ig(&["list"]).status.success());
}

#[test]
fn top_syscall_map_fetch_count_through_the_daemon() {
    let daemon = Daemon::start(&[]);
    let started = Instant::now();
    for output in ["json", "jsonpretty"] {
        let out = remote(
            &daemon,
            &[
                "run",
                "top_syscall",
                "--host",
                "-o",
                output,
                "--map-fetch-count",
                "2",
                "--map-fetch-interval",
                "200ms",
                "--sort",
                "-syscalls",
            ],
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        let text = stdout_of(&out);
        let arrays: Vec<Vec<serde_json::Value>> = serde_json::Deserializer::from_str(&text)
            .into_iter::<Vec<serde_json::Value>>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("-o {output}: not JSON arrays ({e}): {text}"));
        assert_eq!(arrays.len(), 2, "-o {output}: {text}");
        if output == "json" {
            assert_eq!(text.lines().count(), 2, "one array per line: {text}");
        }
        for a in &arrays {
            let counts: Vec<u64> = a.iter().filter_map(|r| r["syscalls"].as_u64()).collect();
            assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
        }
        // The daemon itself makes syscalls every interval: no array is empty.
        assert!(arrays.iter().all(|a| !a.is_empty()), "{text}");
    }
    // Columns: a table per array; top_syscall asks for a cleared screen, never into a pipe.
    let out = remote(
        &daemon,
        &[
            "run",
            "top_syscall",
            "--host",
            "--map-fetch-count",
            "2",
            "--map-fetch-interval",
            "300ms",
            "--max-entries",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(!text.contains('\x1b'), "{text:?}");
    let tables: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(tables.len(), 2, "{text}");
    for t in tables {
        let lines: Vec<&str> = t.lines().filter(|l| !l.is_empty()).collect();
        assert!(lines[0].contains("SYSCALLS"), "{t}");
        assert_eq!(lines.len(), 2, "a header and one row: {t}");
    }
    assert!(started.elapsed() < LIMIT);
}

/// A detached map iterator runs with no client; `ig attach` shows the arrays it kept, then
/// live ones; its output file gets one JSON array per line. A detached snapshot completes and
/// can still be attached to for its array.
#[test]
fn detached_array_gadgets_are_attached_to_as_arrays() {
    let mut daemon = Daemon::start(&[]);
    let file = daemon.dir.path().join("tops.json");
    let file_arg = file.display().to_string();
    let out = daemon.ig(&[
        "run",
        "top_syscall",
        "--host",
        "--detach",
        "--name",
        "tops",
        "--map-fetch-interval",
        "300ms",
        "--sort",
        "-syscalls",
        "--max-entries",
        "3",
        "--output-file",
        &file_arg,
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // A restarted daemon resumes it with its array flags (checked on what attach shows).
    let (status, err) = daemon.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{err}");
    daemon.restart();
    assert!(
        wait_until(Duration::from_secs(60), || {
            stdout_of(&daemon.ig(&["show", "tops", "-o", "json"])).contains("\"Running\"")
        }),
        "{}",
        stdout_of(&daemon.ig(&["show", "tops"]))
    );
    let attach = daemon.spawn(&["attach", "tops", "-o", "json"]);
    let arrays = |run: &Running| -> Vec<Vec<serde_json::Value>> {
        run.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Vec<serde_json::Value>>(l).ok())
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(60), || arrays(&attach).len() >= 3),
        "arrays: {:?}; stderr: {}",
        attach.lines(),
        attach.stderr_text()
    );
    let (_, lines, err) = attach.stop();
    for l in &lines {
        let a: Vec<serde_json::Value> =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not an array ({e}): {l}"));
        assert!(a.len() <= 3, "{l}");
        let counts: Vec<u64> = a.iter().filter_map(|r| r["syscalls"].as_u64()).collect();
        assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    }
    assert!(err.contains("most recent array"), "{err}");
    // The file: one JSON array per line.
    assert!(wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .count()
            >= 2
    }));
    let text = std::fs::read_to_string(&file).expect("output file");
    let complete: Vec<&str> = text.lines().filter(|l| l.ends_with(']')).collect();
    assert!(complete.len() >= 2, "{text}");
    for l in complete {
        let a: Vec<serde_json::Value> =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not an array ({e}): {l}"));
        assert!(a.len() <= 3, "{l}");
    }
    let out = daemon.ig(&["list", "-o", "json"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("list JSON");
    let tops = list
        .iter()
        .find(|i| i["name"] == "tops")
        .expect("tops listed");
    assert_eq!(tops["status"], "Running", "{tops}");
    assert!(tops["events"].as_u64().unwrap_or(0) > 0, "{tops}");
    assert!(daemon.ig(&["delete", "tops"]).status.success());

    // A snapshot ends by itself: Completed, and its array is still there to attach to.
    let out = daemon.ig(&[
        "run",
        "snapshot_process",
        "--host",
        "--detach",
        "--name",
        "snap",
        "--sort",
        "pid",
        "--max-entries",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(wait_until(Duration::from_secs(60), || {
        stdout_of(&daemon.ig(&["show", "snap", "-o", "json"])).contains("\"Completed\"")
    }));
    let out = remote(&daemon, &["attach", "snap", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let arrays = json_arrays(&stdout_of(&out));
    assert_eq!(arrays.len(), 1, "{arrays:?}");
    let p = pids(&arrays[0]);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0] <= 2, "{p:?}");
    assert!(daemon.ig(&["delete", "snap"]).status.success());
}
