//! podman through its Docker-compatible API (`podman system service`, started by
//! tests/setup/podman.sh): listing with `runtimeName "podman"`, events, `ig run -c` selection, the
//! entrypoint of a container started after the tracer, and a short-lived container.

mod common;
mod containers_common;

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use common::*;
use containers_common::containers::{
    ContainerCollection, ContainerEvent, RuntimeConfig, RuntimeKind,
};
use containers_common::{added_named, find, mntns_of, removed_id, unique, wait_event};

/// The name podman gives the image loaded from `docker save`.
const PODMAN_IMAGE: &str = "localhost/ig-test/busybox:latest";
const SOCKET: &str = "/run/podman/podman.sock";
const WAIT: Duration = Duration::from_secs(40);
const LOOP: &str = "while /bin/true ; do whoami ; /bin/sleep 1 ; done";

/// Docker and the image (which podman loads from it), then podman's service; once per binary.
/// Returns the global flags podman commands must use.
fn setup() -> Vec<String> {
    static FLAGS: OnceLock<Vec<String>> = OnceLock::new();
    FLAGS
        .get_or_init(|| {
            containers_common::setup_script("docker.sh", &[]).expect("docker setup");
            containers_common::setup_script("busybox-image.sh", &[]).expect("image setup");
            let flags = containers_common::setup_script("podman.sh", &[]).expect("podman setup");
            flags.split_whitespace().map(str::to_string).collect()
        })
        .clone()
}

/// Runs podman with the setup's global flags; its stdout (trimmed) or its stderr as the error.
fn podman(args: &[&str]) -> Result<String> {
    let out = Command::new("podman")
        .args(setup())
        .args(args)
        .output()
        .context("running podman")?;
    if !out.status.success() {
        bail!(
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A podman container, removed when dropped.
struct Podman {
    name: String,
    id: String,
}

impl Podman {
    /// `podman run` with the rlimits this machine allows (it cannot raise them).
    fn run(name: &str, detach: bool, script: &str) -> Result<Self> {
        let mut args = vec![
            "run",
            "--name",
            name,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        if detach {
            args.push("-d");
        }
        args.extend([PODMAN_IMAGE, "sh", "-c", script]);
        podman(&args)?;
        let id = podman(&["inspect", "-f", "{{.Id}}", name])?;
        Ok(Podman {
            name: name.to_string(),
            id,
        })
    }

    fn pid(&self) -> Result<u32> {
        Ok(podman(&["inspect", "-f", "{{.State.Pid}}", &self.name])?.parse()?)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}

fn podman_only() -> Vec<RuntimeConfig> {
    vec![RuntimeConfig::new(RuntimeKind::Podman).explicit(true)]
}

fn comm_of(e: &serde_json::Value) -> &str {
    e["comm"].as_str().unwrap_or("")
}

fn container_of(e: &serde_json::Value) -> &str {
    e["runtime"]["containerName"].as_str().unwrap_or("")
}

#[tokio::test]
async fn lists_podman_containers_with_runtime_name_podman() -> Result<()> {
    setup();
    assert_eq!(RuntimeKind::Podman.default_socket(), SOCKET);
    let name = unique("ig-podman-list");
    let c = Podman::run(&name, true, "sleep 300")?;
    let pid = c.pid()?;

    let (coll, warnings) = ContainerCollection::start(podman_only()).await?;
    assert!(warnings.is_empty(), "{warnings:?}");
    let all = coll.all();
    let found = find(&all, &name).context("podman container not listed")?;
    assert_eq!(found.id, c.id);
    assert_eq!(found.runtime, RuntimeKind::Podman);
    assert_eq!(found.runtime.as_str(), "podman");
    assert_eq!(found.pid, pid);
    assert_eq!(found.mntns_id, mntns_of(pid)?);
    assert_eq!(found.image_name, PODMAN_IMAGE);
    assert!(found.started_at.is_some());

    // Events: a container started now is added, and removed when it goes.
    let mut rx = coll.subscribe();
    let later = unique("ig-podman-events");
    let c2 = Podman::run(&later, true, "sleep 300")?;
    let ev = wait_event(&mut rx, 30, added_named(&later)).await?;
    let ContainerEvent::Added(added) = ev else {
        unreachable!()
    };
    assert_eq!(added.id, c2.id);
    assert_eq!(added.runtime, RuntimeKind::Podman);
    podman(&["rm", "-f", "-t", "0", &later])?;
    wait_event(&mut rx, 30, removed_id(&c2.id)).await?;
    Ok(())
}

#[tokio::test]
async fn named_podman_with_a_missing_socket_is_an_error_and_unnamed_is_silent() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("podman.sock");
    let explicit = vec![RuntimeConfig::new(RuntimeKind::Podman)
        .socket(&missing)
        .explicit(true)];
    let err = match ContainerCollection::start(explicit).await {
        Ok(_) => bail!("a missing podman socket was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("podman") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    // In the default list, a machine without podman gets no notice about it.
    let quiet = vec![RuntimeConfig::new(RuntimeKind::Podman).socket(&missing)];
    let (_, warnings) = ContainerCollection::start(quiet).await?;
    assert!(warnings.is_empty(), "{warnings:?}");
    Ok(())
}

#[test]
fn run_selects_a_podman_container_and_names_its_runtime() {
    setup();
    let name = unique("ig-podman-sel");
    let other = unique("ig-podman-other");
    let _a = Podman::run(&name, true, LOOP).expect("podman run");
    let _b = Podman::run(&other, true, LOOP).expect("podman run");
    let ig = Ig::new();
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "--runtimes",
        "podman",
        "-c",
        &name,
        "-o",
        "json",
        "--timeout",
        "90",
    ]);
    let e = run
        .wait_event(WAIT, || {}, |e| comm_of(e) == "sleep")
        .unwrap_or_else(|| panic!("no sleep event; stderr: {}", run.stderr_text()));
    assert_eq!(container_of(&e), name);
    assert_eq!(e["runtime"]["runtimeName"], "podman");
    assert_eq!(e["runtime"]["containerImageName"], PODMAN_IMAGE);
    assert!(e["runtime"]["containerId"]
        .as_str()
        .is_some_and(|id| id.len() == 64));
    assert_eq!(args_of(&e), vec!["/bin/sleep", "1"]);
    assert_eq!(e["pcomm"], "sh");
    let events = run.events();
    assert!(
        events.iter().all(|e| container_of(e) == name),
        "an event of another container or the host: {events:?}"
    );
    let (_, _, stderr) = run.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn default_runtimes_include_podman_and_see_a_late_container_entrypoint() {
    setup();
    let name = unique("ig-podman-late");
    let warm = unique("ig-podman-warm");
    let _w = Podman::run(&warm, true, LOOP).expect("podman run");
    let ig = Ig::new();
    // No --runtimes: the default list uses podman because its socket exists.
    let selected = format!("{name},{warm}");
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "-c",
        &selected,
        "-o",
        "json",
        "--timeout",
        "90",
    ]);
    // The tracer is attached and knows podman once the running container's events show.
    run.wait_event(WAIT, || {}, |e| container_of(e) == warm)
        .unwrap_or_else(|| panic!("no event of {warm}; stderr: {}", run.stderr_text()));
    // Started after the tracer: its entrypoint runs before podman announces it.
    let host = marker("podman-late");
    let _c = Podman::run(&name, true, LOOP).expect("podman run");
    let e = run
        .wait_event(
            WAIT,
            || exec("/bin/true", &[&host]),
            |e| comm_of(e) == "sh" && container_of(e) == name,
        )
        .unwrap_or_else(|| {
            panic!(
                "no entrypoint event; events: {:?}; stderr: {}",
                run.lines(),
                run.stderr_text()
            )
        });
    assert_eq!(container_of(&e), name);
    assert_eq!(e["runtime"]["runtimeName"], "podman");
    assert_eq!(args_of(&e), vec!["sh", "-c", LOOP]);
    let t = run
        .wait_event(
            WAIT,
            || {},
            |e| comm_of(e) == "true" && container_of(e) == name,
        )
        .expect("true");
    assert_eq!(t["ppid"], e["pid"]);
    assert!(
        !run.events().iter().any(|e| args_of(e).contains(&host)),
        "a host event"
    );
    let (_, _, stderr) = run.stop();
    assert!(
        !stderr.contains("podman"),
        "a notice about podman: {stderr}"
    );
}

#[test]
fn short_lived_podman_container_is_named() {
    setup();
    let name = unique("ig-podman-short");
    let ig = Ig::new();
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "--runtimes",
        "podman",
        "-c",
        &name,
        "-o",
        "json",
        "--timeout",
        "90",
    ]);
    let mark = marker("short");
    // Each container runs one `echo` and has exited when `podman run` returns, before podman
    // announces it to anyone listening. One is started (under the same name) until the tracer,
    // attaching meanwhile, shows one.
    let deadline = std::time::Instant::now() + WAIT;
    let found = loop {
        let c = Podman::run(&name, false, &format!("/bin/echo {mark}")).expect("podman run");
        drop(c);
        let seen = run.wait_event(
            Duration::from_secs(3),
            || {},
            |e| comm_of(e) == "echo" && args_of(e).contains(&mark),
        );
        if seen.is_some() || std::time::Instant::now() > deadline {
            break seen;
        }
    };
    let e = found.unwrap_or_else(|| {
        panic!(
            "no event of a short-lived container; stderr: {}",
            run.stderr_text()
        )
    });
    assert_eq!(container_of(&e), name);
    assert_eq!(e["runtime"]["runtimeName"], "podman");
    assert_eq!(e["runtime"]["containerImageName"], PODMAN_IMAGE);
}

/// A socket at podman's path that answers HTTP but is not an engine: named, not a hang.
#[tokio::test]
async fn a_socket_that_is_not_podman_is_named() -> Result<()> {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("podman.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
        }
    });
    let cfg = RuntimeConfig::new(RuntimeKind::Podman)
        .socket(&path)
        .explicit(true);
    let err = match ContainerCollection::start(vec![cfg]).await {
        Ok(_) => bail!("accepted a socket that is not an engine"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with("podman: ")
            && err.contains(&path.display().to_string())
            && err.contains("does not speak the Docker Engine API")
            && err.contains("Api-Version"),
        "{err}"
    );
    Ok(())
}
