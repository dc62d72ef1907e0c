//! `ig daemon --traceloop`: the recorder is already running when the failure happens;
//! `ig traceloop list/show/close` read it while containers run and after they are gone.

mod common;
mod containers_common;
mod daemon_common;

use std::process::Command;
use std::time::Duration;

use common::*;
use containers_common::{setup, unique, DockerContainer, IMAGE};
use daemon_common::*;

const WAIT: Duration = Duration::from_secs(20);

fn recording_daemon(extra: &[&str]) -> Daemon {
    setup();
    let mut flags = vec!["--runtimes", "docker", "--traceloop"];
    flags.extend_from_slice(extra);
    Daemon::start(&flags)
}

fn traces(d: &Daemon) -> serde_json::Value {
    let o = d.ig(&["traceloop", "list", "-o", "json"]);
    assert!(o.status.success(), "traceloop list: {}", stderr_of(&o));
    serde_json::from_slice(&o.stdout).expect("traceloop list -o json")
}

fn traces_of(list: &serde_json::Value, name: &str) -> Vec<serde_json::Value> {
    list["traces"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|t| t["container_name"] == name)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The lines of `show`, or none while the recorder has not named the trace yet.
fn try_show(d: &Daemon, selector: &str) -> Option<Vec<String>> {
    let o = d.ig(&["traceloop", "show", selector]);
    o.status
        .success()
        .then(|| stdout_of(&o).lines().map(str::to_string).collect())
}

fn show(d: &Daemon, selector: &str) -> Vec<String> {
    let o = d.ig(&["traceloop", "show", selector]);
    assert!(o.status.success(), "show {selector}: {}", stderr_of(&o));
    stdout_of(&o).lines().map(str::to_string).collect()
}

fn docker_run_rm(name: &str, script: &str) {
    let o = Command::new("docker")
        .args(["run", "--rm", "--name", name, IMAGE, "sh", "-c", script])
        .output()
        .expect("docker run");
    // The script's own failure (the demo's `cat`) is its business; docker's (125) is not.
    assert_ne!(
        o.status.code(),
        Some(125),
        "docker run {name}: {}",
        stderr_of(&o)
    );
}

/// The exited trace of the container named `name`, once the recorder saw it gone.
fn exited_trace(d: &Daemon, name: &str) -> serde_json::Value {
    let mut found = serde_json::Value::Null;
    assert!(
        wait_until(WAIT, || {
            found = traces_of(&traces(d), name)
                .into_iter()
                .next()
                .unwrap_or_default();
            found["state"] == "exited"
        }),
        "no exited trace of {name}: {found}"
    );
    found
}

#[test]
fn a_removed_container_is_listed_shown_and_closed() {
    let d = recording_daemon(&[]);
    let name = unique("mypod");
    // The seed's multiplication demo, in a container removed when it ends.
    docker_run_rm(
        &name,
        r#"RANDOM=output ; echo "3*7*2" | bc > /tmp/file-$RANDOM ; cat /tmp/file-$RANDOM"#,
    );
    let t = exited_trace(&d, &name);
    assert_eq!(t["runtime"], "docker");
    assert_eq!(t["container_id"].as_str().map(str::len), Some(64));
    assert!(t["records"].as_u64().unwrap_or(0) > 0);
    assert!(t["exited_unix_ms"].as_i64().unwrap_or(0) > 0);
    assert!(t["first_record_unix_ns"].as_i64() <= t["last_record_unix_ns"].as_i64());
    let table = stdout_of(&d.ig(&["traceloop", "list"]));
    let row = table
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{name} not in:\n{table}"));
    assert!(row.contains("exited"), "{row}");

    let lines = show(&d, &name);
    assert!(
        lines[0].starts_with(&format!("# traceloop of container {name} (docker ")),
        "{}",
        lines[0]
    );
    assert!(
        lines.iter().any(|l| l.contains("[bc] write(")
            && l.contains(r#"buf="42\n""#)
            && l.ends_with("= 3")),
        "no write of 42 by bc in:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| l.contains("[cat]")
            && l.contains(r#"filename="/tmp/file-"#)
            && l.contains("= -2 (ENOENT)")),
        "no failing open by cat"
    );
    // JSON, and a syscall filter on show.
    let o = d.ig(&[
        "traceloop",
        "show",
        &name,
        "-o",
        "json",
        "--syscall-filters",
        "write",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let events: Vec<serde_json::Value> = stdout_of(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e["runtime"]["containerName"], name.as_str());
        assert_eq!(e["syscall"], "write", "{e}");
    }

    let o = d.ig(&["traceloop", "close", &name]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o).trim(), t["id"].as_str().unwrap_or("?"));
    assert!(traces_of(&traces(&d), &name).is_empty());
    let o = d.ig(&["traceloop", "show", &name]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("no trace of a container named"),
        "{}",
        stderr_of(&o)
    );
}

#[test]
fn a_running_container_is_shown_while_recording_goes_on() {
    let d = recording_daemon(&[]);
    let name = unique("looper");
    let _container = DockerContainer::run_script(
        &name,
        "i=0; while true; do i=$((i+1)); echo tick$i > /tmp/ticks; sleep 0.1; done",
    )
    .expect("docker run");
    let newest_tick = |lines: &[String]| -> u64 {
        lines
            .iter()
            .filter_map(|l| l.split(r#"buf="tick"#).nth(1))
            .filter_map(|r| r.split('\\').next()?.parse().ok())
            .max()
            .unwrap_or(0)
    };
    let mut first = 0;
    assert!(wait_until(WAIT, || {
        // The trace is listed once the recorder named its container (a few ticks).
        first = try_show(&d, &name).map(|l| newest_tick(&l)).unwrap_or(0);
        first > 3
    }));
    let list = traces(&d);
    assert_eq!(traces_of(&list, &name)[0]["state"], "running");
    std::thread::sleep(Duration::from_millis(1000));
    let second = newest_tick(&show(&d, &name));
    assert!(
        second > first,
        "recording went on: tick {first} then {second}"
    );
}

#[test]
fn two_containers_with_one_name_have_two_traces() {
    let d = recording_daemon(&[]);
    let name = unique("samename");
    docker_run_rm(&name, "echo first-run > /tmp/run");
    exited_trace(&d, &name);
    docker_run_rm(&name, "echo second-run > /tmp/run");
    let mut both = Vec::new();
    assert!(
        wait_until(WAIT, || {
            both = traces_of(&traces(&d), &name);
            both.len() == 2 && both.iter().all(|t| t["state"] == "exited")
        }),
        "{both:?}"
    );
    assert_ne!(both[0]["id"], both[1]["id"]);
    let o = d.ig(&["traceloop", "show", &name]);
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("give an id"), "{}", stderr_of(&o));
    let runs: Vec<Vec<String>> = both
        .iter()
        .map(|t| show(&d, &t["id"].as_str().unwrap_or("?")[..16]))
        .collect();
    let has = |lines: &[String], s: &str| lines.iter().any(|l| l.contains(s));
    let (a, b) = (&runs[0], &runs[1]);
    assert!(
        has(a, "first-run") != has(b, "first-run"),
        "first-run in exactly one"
    );
    assert!(
        has(a, "second-run") != has(b, "second-run"),
        "second-run in exactly one"
    );
    assert!(has(a, "first-run") != has(a, "second-run"));
}

#[test]
fn short_containers_each_get_their_own_trace_and_the_oldest_exited_go_first() {
    let d = recording_daemon(&[
        "--traceloop-max-containers",
        "16",
        "--traceloop-max-exited",
        "10",
        "--traceloop-records",
        "1024",
    ]);
    let prefix = unique("short");
    let n = 50;
    for i in 0..n {
        docker_run_rm(
            &format!("{prefix}-{i}"),
            &format!("echo mark-{prefix}-{i}- > /tmp/m"),
        );
    }
    let index_of = |t: &serde_json::Value| -> Option<usize> {
        t["container_name"]
            .as_str()?
            .strip_prefix(&format!("{prefix}-"))?
            .parse()
            .ok()
    };
    let mut list = serde_json::Value::Null;
    assert!(
        wait_until(WAIT, || {
            list = traces(&d);
            let ours: Vec<_> = list["traces"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|t| index_of(t).is_some())
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            ours.iter().all(|t| t["state"] == "exited")
                && list["dropped"].as_u64().unwrap_or(0) >= (n - 10) as u64
        }),
        "{list}"
    );
    let mut kept: Vec<usize> = list["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .filter_map(index_of)
        .collect();
    kept.sort();
    assert!(!kept.is_empty() && kept.len() <= 10, "{kept:?}");
    // The oldest went first: what is left is the newest ones, without a gap.
    let newest: Vec<usize> = (n - kept.len()..n).collect();
    assert_eq!(kept, newest);
    // Each trace holds its own container's syscalls, no other's.
    for i in &kept {
        let lines = show(&d, &format!("{prefix}-{i}"));
        let own = format!("mark-{prefix}-{i}-");
        assert!(lines.iter().any(|l| l.contains(&own)), "{own} missing");
        let foreign = lines
            .iter()
            .find(|l| l.contains(&format!("mark-{prefix}-")) && !l.contains(&own));
        assert!(foreign.is_none(), "another container's record: {foreign:?}");
    }
    let o = d.ig(&["traceloop", "list"]);
    assert!(
        stderr_of(&o).contains("exited traces were dropped to keep at most 10 (oldest first)"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(list["lost_containers"], 0);
}

#[test]
fn without_traceloop_the_daemon_says_how_to_get_it() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let o = d.ig(&["traceloop", "list"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("ig daemon --traceloop"),
        "{}",
        stderr_of(&o)
    );
    let o = Command::new(ig_bin())
        .args(["daemon", "--traceloop-max-exited", "3"])
        .output()
        .expect("ig daemon");
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("need --traceloop"),
        "{}",
        stderr_of(&o)
    );
}
