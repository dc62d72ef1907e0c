//! traceloop with real Docker containers: the seed's demos, a syscall storm, isolation.

mod common;
mod containers_common;

use std::process::Command;
use std::time::Duration;

use common::*;
use containers_common::{run, setup, unique, IMAGE};

/// Starts `ig run traceloop` for `name`, runs the container to completion, stops the trace.
fn record(name: &str, script: &str, extra: &[&str]) -> (Vec<String>, String) {
    setup();
    let ig = Ig::new();
    let mut args = vec!["run", "traceloop", "-c", name, "--timeout", "60"];
    args.extend_from_slice(extra);
    let tracer = start(&ig, &args);
    let out = Command::new("docker")
        .args(["run", "--rm", "--name", name, IMAGE, "sh", "-c", script])
        .output()
        .expect("docker run");
    let _ = out;
    std::thread::sleep(Duration::from_millis(500));
    let (status, lines, stderr) = tracer.stop();
    assert!(status.success(), "ig exited with {status}: {stderr}");
    (lines, stderr)
}

/// Starts `ig run traceloop` and returns once it records.
fn start(ig: &Ig, args: &[&str]) -> Running {
    let tracer = ig.spawn(args);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !tracer.stderr_text().contains("recording syscalls") {
        assert!(
            std::time::Instant::now() < deadline,
            "traceloop did not start: {}",
            tracer.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    tracer
}

fn header_of(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.starts_with("# traceloop of"))
        .collect()
}

#[test]
fn multiplication_demo() {
    let name = unique("mypod");
    let (lines, stderr) = record(
        &name,
        r#"RANDOM=output ; echo "3*7*2" | bc > /tmp/file-$RANDOM ; cat /tmp/file-$RANDOM"#,
        &[],
    );
    let headers = header_of(&lines);
    assert_eq!(
        headers.len(),
        1,
        "one container traced: {headers:?}\n{stderr}"
    );
    assert!(
        headers[0].contains(&format!("container {name} (docker")),
        "{}",
        headers[0]
    );

    let written = lines
        .iter()
        .find(|l| l.contains("[bc] write(") && l.contains(r#"buf="42\n""#))
        .unwrap_or_else(|| panic!("no write of 42 by bc in:\n{}", lines.join("\n")));
    assert!(written.ends_with("= 3"), "{written}");
    let created = lines
        .iter()
        .find(|l| l.contains(r#"filename="/tmp/file-"#) && l.contains("O_CREAT"))
        .expect("the open that created the result file");
    let created_name = created
        .split(r#"filename=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("name");
    let failed = lines
        .iter()
        .find(|l| {
            l.contains("[cat]") && l.contains(r#"filename="/tmp/file-"#) && l.contains("(ENOENT)")
        })
        .expect("cat's failing open");
    assert!(failed.contains("= -2 (ENOENT)"), "{failed}");
    assert!(
        !failed.contains(created_name),
        "cat opened the file that was written: {failed}"
    );
    // The seed's line shape: relative time, cpu, pid, comm, call with named arguments.
    let shape = regex_like(failed);
    assert!(shape, "unexpected line shape: {failed}");
}

/// `00:00.071546191 cpu#1 pid 14276 [cat] openat(dfd=-100, filename=..., ...) = -2 (ENOENT)`
fn regex_like(line: &str) -> bool {
    let mut parts = line.splitn(5, ' ');
    let (Some(t), Some(cpu), Some(pid), Some(n), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    t.len() == 15
        && t.as_bytes()[2] == b':'
        && t.as_bytes()[5] == b'.'
        && cpu.starts_with("cpu#")
        && pid == "pid"
        && n.parse::<u32>().is_ok()
        && rest.starts_with("[cat] openat(dfd=-100, filename=")
}

#[test]
fn listing_demo_recovers_filtered_entries() {
    let name = unique("lspod");
    let (lines, _) = record(&name, "ls -l /bin | grep wget", &[]);
    let stat_like = ["stat(", "lstat(", "newfstatat(", "statx("];
    let mut others: Vec<&str> = lines
        .iter()
        .filter(|l| stat_like.iter().any(|s| l.contains(s)))
        .filter_map(|l| {
            l.split(r#""/bin/"#)
                .nth(1)
                .and_then(|r| r.split('"').next())
        })
        .filter(|entry| *entry != "wget" && !entry.is_empty())
        .collect();
    others.sort();
    others.dedup();
    assert!(
        others.len() >= 10,
        "stat calls for other /bin entries: {others:?}"
    );
    assert!(
        others.contains(&"whoami") || others.contains(&"wc"),
        "{others:?}"
    );
}

#[test]
fn syscall_storm_stays_bounded_and_keeps_the_newest() {
    let name = unique("storm");
    let records = 4096;
    let (lines, stderr) = record(
        &name,
        "dd if=/dev/zero of=/dev/null bs=1 count=200000 ; echo storm-done-marker",
        &["--records", &records.to_string()],
    );
    let calls: Vec<&String> = lines.iter().filter(|l| !l.starts_with('#')).collect();
    assert!(!calls.is_empty(), "nothing recorded: {stderr}");
    // Each line is one or two records (enter + exit): never more lines than records.
    assert!(
        calls.len() <= records,
        "{} lines for {records} records",
        calls.len()
    );
    assert!(calls.len() > records / 4, "only {} lines", calls.len());
    // The newest survive: the shell's final echo, after dd's 400,000 syscalls.
    assert!(
        calls
            .iter()
            .any(|l| l.contains("write(") && l.contains("storm-done-marker")),
        "the newest records were lost"
    );
    // The oldest were overwritten: the container's first exec is gone.
    assert!(
        !calls.iter().any(|l| l.contains("[runc:[2:INIT]]")),
        "oldest records still there"
    );
}

#[test]
fn other_containers_never_appear() {
    setup();
    let other = unique("noisy");
    run(
        "docker",
        &[
            "run",
            "-d",
            "--name",
            &other,
            IMAGE,
            "sh",
            "-c",
            "while true ; do echo x > /tmp/noisy-marker ; done",
        ],
    )
    .expect("noisy container");
    let name = unique("quiet");
    let (lines, stderr) = record(&name, "cat /etc/passwd >/dev/null; sleep 1", &[]);
    let _ = run("docker", &["rm", "-f", &other]);
    let headers = header_of(&lines);
    assert_eq!(headers.len(), 1, "{headers:?}\n{stderr}");
    assert!(headers[0].contains(&name));
    assert!(
        lines.iter().any(|l| l.contains("/etc/passwd")),
        "the traced container's open is missing:\n{}\n{stderr}",
        lines
            .iter()
            .filter(|l| l.contains("open") || l.starts_with('#'))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !lines.iter().any(|l| l.contains("noisy-marker")),
        "another container's syscalls appear"
    );
}

#[test]
fn json_output_and_syscall_filters() {
    setup();
    let name = unique("jsonpod");
    let ig = Ig::new();
    let tracer = start(
        &ig,
        &[
            "run",
            "traceloop",
            "-c",
            &name,
            "-o",
            "json",
            "--syscall-filters",
            "openat,write",
            "--timeout",
            "60",
        ],
    );
    run(
        "docker",
        &[
            "run",
            "--rm",
            "--name",
            &name,
            IMAGE,
            "sh",
            "-c",
            "cat /nonexistent-file ; echo hi",
        ],
    )
    .ok();
    std::thread::sleep(Duration::from_millis(500));
    let (status, lines, stderr) = tracer.stop();
    assert!(status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!events.is_empty(), "no JSON events: {lines:?}");
    assert!(
        events
            .iter()
            .all(|e| e["syscall"] == "openat" || e["syscall"] == "write"),
        "filter ignored"
    );
    assert!(events
        .iter()
        .all(|e| e["runtime"]["containerName"] == name.as_str()));
    let failed = events
        .iter()
        .find(|e| e["syscall"] == "openat" && e["error"] == "ENOENT")
        .expect("the failing openat");
    assert_eq!(failed["comm"], "cat");
    assert!(failed["params"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["value"] == "/nonexistent-file")));
}
