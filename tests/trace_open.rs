//! The built-in trace_open: in a Docker container with `-c NAME` and on the host, the open's
//! result (fd or error), flags, mode, file name and process fields; `--failed` and `--comm`.

mod common;
mod containers_common;

use std::time::Duration;

use common::*;
use containers_common::{setup, unique, DockerContainer};

const WAIT: Duration = Duration::from_secs(40);

fn run_trace_open(ig: &Ig, extra: &[&str]) -> Running {
    let mut args = vec!["run", "trace_open", "-o", "json", "--timeout", "120"];
    args.extend_from_slice(extra);
    ig.spawn(&args)
}

#[test]
fn container_opens_with_their_results() {
    setup();
    let name = unique("trace-open");
    let mark = marker("open");
    // A file that exists, one that does not, one created (O_CREAT with mode 0644 by the shell).
    let script = format!(
        "while true; do cat /etc/hostname >/dev/null; cat /nope-{mark} 2>/dev/null; \
         echo x > /tmp/{mark}; sleep 0.3; done"
    );
    let _c = DockerContainer::run_script(&name, &script).expect("docker run");
    let ig = Ig::new();
    let run = run_trace_open(&ig, &["-c", &name]);
    let host_mark = format!("/nope-{mark}");
    let missing = run
        .wait_event(
            WAIT,
            // The host opens the same missing path: never shown under -c.
            || exec("/bin/cat", &[&host_mark]),
            |e| e["fname"] == host_mark.as_str(),
        )
        .unwrap_or_else(|| panic!("no event; stderr: {}", run.stderr_text()));
    assert_eq!(missing["runtime"]["containerName"], name.as_str());
    assert_eq!(missing["runtime"]["runtimeName"], "docker");
    assert_eq!(missing["proc"]["comm"], "cat");
    assert_eq!(missing["fd"], -1);
    assert_eq!(missing["error"], "ENOENT");
    assert_eq!(missing["error_raw"], 2);
    assert!(missing["flags"]
        .as_str()
        .is_some_and(|f| f.starts_with("O_RDONLY")));
    assert!(missing["proc"]["parent"]["comm"] == "sh", "{missing}");
    assert_eq!(missing["proc"]["creds"]["user"], "root");

    let found = run
        .wait_event(WAIT, || {}, |e| e["fname"] == "/etc/hostname")
        .expect("open of /etc/hostname");
    assert_eq!(found["error"], "", "{found}");
    assert!(found["fd"].as_i64().is_some_and(|fd| fd >= 3), "{found}");
    assert_eq!(found["runtime"]["containerName"], name.as_str());

    let tmp = format!("/tmp/{mark}");
    let created = run
        .wait_event(WAIT, || {}, |e| e["fname"] == tmp.as_str())
        .expect("open of the created file");
    assert_eq!(created["proc"]["comm"], "sh", "{created}");
    assert_eq!(created["flags"], "O_WRONLY|O_CREAT|O_TRUNC", "{created}");
    assert_eq!(created["mode"], "-rw-rw-rw-", "{created}");
    assert_eq!(created["mode_raw"], 0o666, "{created}");

    let events = run.events();
    assert!(
        events
            .iter()
            .all(|e| e["runtime"]["containerName"] == name.as_str()),
        "an event from outside the container: {events:?}"
    );
}

#[test]
fn host_opens_failed_only_and_by_comm() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let comm = "trace-open-tst";
    let cat = dir.path().join(comm);
    std::fs::copy("/bin/cat", &cat).expect("copy cat");
    let cat = cat.to_string_lossy().into_owned();
    let present = dir.path().join("present");
    std::fs::write(&present, "x").expect("write");
    let present = present.to_string_lossy().into_owned();
    let missing = format!("{}/{}", dir.path().display(), marker("missing"));
    let run = run_trace_open(&ig, &["--host", "--failed", "--comm", comm]);
    let e = run
        .wait_event(
            WAIT,
            || {
                exec(&cat, &[&present]);
                exec(&cat, &[&missing]);
                exec("/bin/cat", &[&missing]);
            },
            |e| e["fname"] == missing.as_str(),
        )
        .unwrap_or_else(|| panic!("no event; stderr: {}", run.stderr_text()));
    assert_eq!(e["proc"]["comm"], comm);
    assert_eq!(e["error"], "ENOENT");
    assert_eq!(e["fd"], -1);
    assert_eq!(e["runtime"]["containerName"], "");
    let events = run.events();
    assert!(
        events
            .iter()
            .all(|e| e["proc"]["comm"] == comm && e["error"] != "" && e["fd"] == -1),
        "--failed --comm let through: {events:?}"
    );
    assert!(!events.iter().any(|e| e["fname"] == present.as_str()));
}

#[test]
fn columns_show_the_open_and_a_bad_param_is_refused() {
    let ig = Ig::new();
    let out = ig.output(&[
        "run",
        "trace_open",
        "--host",
        "--comm",
        "x".repeat(20).as_str(),
    ]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("comm"), "{}", stderr_of(&out));
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = format!("{}/{}", dir.path().display(), marker("col"));
    let run = ig.spawn(&[
        "run",
        "trace_open",
        "--host",
        "--comm",
        "cat",
        "--timeout",
        "120",
    ]);
    let deadline = std::time::Instant::now() + WAIT;
    let tail = &missing[missing.len() - 20..];
    while std::time::Instant::now() < deadline && !run.lines().iter().any(|l| l.ends_with(tail)) {
        exec("/bin/cat", &[&missing]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = run.lines();
    assert!(
        lines[0].contains("PROC.COMM")
            && lines[0].contains("FD ERROR")
            && lines[0].ends_with("FNAME"),
        "{lines:?}"
    );
    let row = lines
        .iter()
        .find(|l| l.ends_with(tail))
        .unwrap_or_else(|| panic!("no row: {lines:?}"));
    assert!(row.contains(" cat "), "{row}");
    assert!(row.contains("  -1 ENOENT   O_RDONLY"), "{row}");
}
