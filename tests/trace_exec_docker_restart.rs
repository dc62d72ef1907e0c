//! A restart of dockerd while `ig run` is active does not kill the run: it reconnects and keeps
//! enriching. Alone in its binary, since it stops the daemon other tests use.

mod common;
mod containers_common;

use std::time::Duration;

use common::*;
use containers_common::{run, setup, setup_script, unique, IMAGE};

#[test]
fn events_after_a_dockerd_restart_are_enriched() {
    setup();
    let ig = Ig::new();
    let mut tracer = ig.spawn(&["run", "trace_exec", "-o", "json", "--timeout", "120"]);
    std::thread::sleep(Duration::from_secs(2));
    let _ = run("pkill", &["-TERM", "-x", "dockerd"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::process::Command::new("pgrep")
        .args(["-x", "dockerd"])
        .status()
        .is_ok_and(|s| s.success())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    setup_script("docker.sh", &[]).expect("restart dockerd");
    let name = unique("after-restart");
    run(
        "docker",
        &[
            "run",
            "-d",
            "--name",
            &name,
            IMAGE,
            "sh",
            "-c",
            "while /bin/true ; do /bin/sleep 1 ; done",
        ],
    )
    .expect("docker run");
    let e = tracer.wait_event(
        Duration::from_secs(40),
        || {},
        |e| e["runtime"]["containerName"] == name.as_str() && e["comm"] == "true",
    );
    let _ = run("docker", &["rm", "-f", &name]);
    let e = e.unwrap_or_else(|| {
        panic!(
            "no enriched event after restart; stderr: {}",
            tracer.stderr_text()
        )
    });
    assert_eq!(e["runtime"]["runtimeName"], "docker");
    assert!(tracer.child_alive(), "ig run died with dockerd");
}
