//! A second flight recorder the runtime has never seen (tests/gadgets/record_files: openat,
//! close, read and write only, in a record struct of its own) is built with `ig image build`
//! and run against a real Docker container: the runtime finds it by its GADGET_RECORDER marker
//! and decodes its records by their typedefs, with nothing of traceloop in between.

mod common;
mod containers_common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use containers_common::{run, setup, unique, IMAGE};

const GADGET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/record_files");
const TAG: &str = "127.0.0.1:5000/test/record_files:v1";

fn build(ig: &Ig) {
    let out = ig.output(&["image", "build", GADGET, "-t", TAG]);
    assert!(out.status.success(), "build: {}", stderr_of(&out));
    assert!(Path::new(GADGET).join("program.bpf.c").exists());
}

/// Runs the recorder for container `name` while the container runs `script` to completion.
fn record(ig: &Ig, name: &str, script: &str, extra: &[&str]) -> (Vec<String>, String) {
    let mut args = vec![
        "run",
        TAG,
        "--verify-image=false",
        "-c",
        name,
        "--timeout",
        "60",
    ];
    args.extend_from_slice(extra);
    let tracer = ig.spawn(&args);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tracer.stderr_text().contains("recording syscalls") {
        assert!(
            Instant::now() < deadline,
            "the recorder did not start: {}",
            tracer.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run(
        "docker",
        &["run", "--rm", "--name", name, IMAGE, "sh", "-c", script],
    )
    .ok();
    std::thread::sleep(Duration::from_millis(500));
    let (status, lines, stderr) = tracer.stop();
    assert!(status.success(), "ig exited with {status}: {stderr}");
    (lines, stderr)
}

/// The syscall name of a line `00:00.000 cpu#0 pid 7 [cat] openat(...) = 3`.
fn call_of(line: &str) -> Option<&str> {
    let rest = line.split("] ").nth(1)?;
    let rest = rest.strip_prefix("... ").unwrap_or(rest);
    rest.split('(').next()
}

#[test]
fn a_second_recorder_gadget_runs_with_its_own_struct() {
    setup();
    let ig = Ig::new();
    build(&ig);

    // The marker makes it a flight recorder: the recorder's flags are offered.
    let help = ig.output(&["run", TAG, "--verify-image=false", "--help"]);
    let text = stdout_of(&help);
    assert!(
        text.contains("--syscall-filters") && text.contains("--records"),
        "{text}{}",
        stderr_of(&help)
    );

    let name = unique("files");
    let missing = format!("/nonexistent-{}", marker("rec"));
    let said = marker("said");
    let (lines, stderr) = record(
        &ig,
        &name,
        &format!("cat {missing} ; echo {said} > /tmp/said ; head -n 1 /tmp/said ; ls / >/dev/null"),
        &[],
    );
    let all = lines.join("\n");
    let headers: Vec<&String> = lines.iter().filter(|l| l.starts_with("# ")).collect();
    assert_eq!(headers.len(), 1, "{all}\n{stderr}");
    assert!(
        headers[0].starts_with(&format!("# files of container {name} (docker")),
        "{}",
        headers[0]
    );

    // Only what the gadget records, decoded by name.
    let calls: Vec<&String> = lines.iter().filter(|l| !l.starts_with('#')).collect();
    assert!(calls.len() > 4, "{all}\n{stderr}");
    for l in &calls {
        let call = call_of(l).unwrap_or_default();
        assert!(
            ["openat", "close", "read", "write"].contains(&call),
            "a syscall the gadget does not record: {l}"
        );
    }
    // The failing open, with its path (captured string) and the errno of its return value.
    let failed = format!(
        "[cat] openat(dfd=-100, filename=\"{missing}\", flags=O_RDONLY, mode=0) = -2 (ENOENT)"
    );
    assert!(
        calls.iter().any(|l| l.ends_with(&failed)),
        "no {failed} in:\n{all}"
    );
    // The shell's write of the marker (captured buffer).
    let written = format!(
        "buf=\"{said}\\n\", count={}) = {}",
        said.len() + 1,
        said.len() + 1
    );
    assert!(
        calls
            .iter()
            .any(|l| l.contains("[sh] write(fd=1, ") && l.ends_with(&written)),
        "no write of {said} by sh in:\n{all}"
    );
    // head (busybox cat would use sendfile, which this gadget does not record) reads it back
    // (the buffer is not captured by this gadget: its pointer) and writes it out.
    assert!(
        calls
            .iter()
            .any(|l| l.contains("[head] write(fd=1, ") && l.ends_with(&written)),
        "no write of {said} by head in:\n{all}"
    );
    assert!(
        calls.iter().any(|l| l.contains("[head] read(fd=3, buf=0x")
            && l.ends_with(&format!(") = {}", said.len() + 1))),
        "no read of /tmp/said in:\n{all}"
    );
    assert!(
        calls
            .iter()
            .any(|l| l.contains("close(fd=") && l.ends_with(") = 0")),
        "no close in:\n{all}"
    );
}

#[test]
fn json_and_the_syscall_filter_of_a_second_recorder() {
    setup();
    let ig = Ig::new();
    build(&ig);
    let name = unique("filesjson");
    let missing = format!("/nonexistent-{}", marker("json"));
    let (lines, stderr) = record(
        &ig,
        &name,
        &format!("cat {missing} ; echo hi"),
        &["-o", "json", "--syscall-filters", "openat"],
    );
    let events: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!events.is_empty(), "no events: {lines:?}\n{stderr}");
    assert!(
        events.iter().all(|e| e["syscall"] == "openat"),
        "the filter was not applied: {lines:?}"
    );
    assert!(events
        .iter()
        .all(|e| e["runtime"]["containerName"] == name.as_str()));
    let failed = events
        .iter()
        .find(|e| e["params"][1]["value"] == missing.as_str())
        .unwrap_or_else(|| panic!("no openat of {missing}: {lines:?}"));
    assert_eq!(failed["comm"], "cat");
    assert_eq!(failed["ret"], -2);
    assert_eq!(failed["error"], "ENOENT");
    assert_eq!(failed["state"], "complete");
    assert_eq!(failed["params"][0]["name"], "dfd");
    assert_eq!(failed["params"][1]["name"], "filename");
    // No tid in this struct: the pid stands for it.
    assert_eq!(failed["tid"], failed["pid"]);
}
