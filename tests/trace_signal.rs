//! The built-in trace_signal: generated signals in a Docker container with `-c NAME` (sender,
//! target, signal name, what became of it), kill(2) calls with their result (`--kill-only`),
//! and `--signal` on the host.

mod common;
mod containers_common;

use std::time::Duration;

use common::*;
use containers_common::{setup, unique, DockerContainer};

const WAIT: Duration = Duration::from_secs(40);

fn run_trace_signal(ig: &Ig, extra: &[&str]) -> Running {
    let mut args = vec!["run", "trace_signal", "-o", "json", "--timeout", "120"];
    args.extend_from_slice(extra);
    ig.spawn(&args)
}

#[test]
fn container_signals_are_generated_and_named() {
    setup();
    let name = unique("trace-signal");
    // sh sends SIGUSR1 to a sleep it started.
    // (The kill waits a moment: until the child has exec'd, its comm is still sh.)
    let script = "while true; do sleep 30 & sleep 0.2; kill -USR1 $! ; wait ; done";
    let _c = DockerContainer::run_script(&name, script).expect("docker run");
    let ig = Ig::new();
    let run = run_trace_signal(&ig, &["-c", &name]);
    let usr1 = run
        .wait_event(
            WAIT,
            || exec("/bin/sh", &["-c", "sleep 5 & kill -USR1 $!"]),
            |e| e["sig"] == "SIGUSR1" && e["tcomm"] == "sleep",
        )
        .unwrap_or_else(|| panic!("no SIGUSR1; stderr: {}", run.stderr_text()));
    assert_eq!(usr1["runtime"]["containerName"], name.as_str(), "{usr1}");
    assert_eq!(usr1["proc"]["comm"], "sh", "{usr1}");
    assert_eq!(usr1["sig_raw"], 10, "{usr1}");
    assert_eq!(usr1["tcomm"], "sleep", "{usr1}");
    assert_eq!(usr1["result"], "delivered", "{usr1}");
    assert_eq!(usr1["error"], "", "{usr1}");
    assert!(usr1["tpid"].as_u64().is_some_and(|p| p > 0), "{usr1}");
    let events = run.events();
    assert!(
        events
            .iter()
            .all(|e| e["runtime"]["containerName"] == name.as_str()),
        "{events:?}"
    );
}

#[test]
fn kill_calls_with_their_result() {
    setup();
    let name = unique("trace-kill");
    // kill -0 of a pid that does not exist: ESRCH, every round.
    let script = "while true; do kill -0 999999 2>/dev/null; kill -TERM 1 ; sleep 0.3; done";
    let _c = DockerContainer::run_script(&name, script).expect("docker run");
    let ig = Ig::new();
    let run = run_trace_signal(&ig, &["-c", &name, "--kill-only"]);
    let failed = run
        .wait_event(WAIT, || {}, |e| e["tpid"] == 999999)
        .unwrap_or_else(|| panic!("no kill; stderr: {}", run.stderr_text()));
    // kill(pid, 0): no signal, an existence check.
    assert_eq!(failed["sig"], "", "{failed}");
    assert_eq!(failed["sig_raw"], 0, "{failed}");
    assert_eq!(failed["error"], "ESRCH", "{failed}");
    assert_eq!(failed["error_raw"], 3, "{failed}");
    assert_eq!(failed["result"], "syscall", "{failed}");
    assert_eq!(failed["proc"]["comm"], "sh", "{failed}");
    assert_eq!(failed["runtime"]["containerName"], name.as_str());
    // sh is pid 1 in the container: SIGTERM to itself succeeds (and is ignored by it).
    let term = run
        .wait_event(WAIT, || {}, |e| e["sig"] == "SIGTERM")
        .expect("kill -TERM 1");
    assert_eq!(term["tpid"], 1, "{term}");
    assert_eq!(term["error"], "", "{term}");
}

#[test]
fn host_signal_filter() {
    let ig = Ig::new();
    let run = run_trace_signal(&ig, &["--host", "--signal", "12"]);
    let e = run
        .wait_event(
            WAIT,
            || exec("/bin/sh", &["-c", "sleep 5 & kill -USR2 $!; kill -USR1 $!"]),
            |e| e["sig"] == "SIGUSR2",
        )
        .unwrap_or_else(|| panic!("no SIGUSR2; stderr: {}", run.stderr_text()));
    assert_eq!(e["runtime"]["containerName"], "");
    assert_eq!(e["sig_raw"], 12);
    let events = run.events();
    assert!(events.iter().all(|e| e["sig"] == "SIGUSR2"), "{events:?}");
}
