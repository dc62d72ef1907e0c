//! Helpers shared by the container tests: run the setup scripts, run
//! docker/ctr, wait for collection events, clean up what a test started.
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::sync::broadcast;

// The one line to change when these tests move into the main crate.
pub use ig::containers;

use containers::{Container, ContainerEvent};

pub const IMAGE: &str = "ig-test/busybox:latest";
pub const CTR_IMAGE: &str = "docker.io/ig-test/busybox:latest";

fn setup_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/setup").to_string()
}

/// Runs a setup script; returns its stdout (trimmed).
pub fn setup_script(name: &str, args: &[&str]) -> Result<String> {
    let out = Command::new("bash")
        .arg(format!("{}/{name}", setup_dir()))
        .args(args)
        .output()
        .with_context(|| format!("running tests/setup/{name}"))?;
    if !out.status.success() {
        bail!(
            "tests/setup/{name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Docker running, test containerd running, image imported in both; once
/// per test binary. Returns the test containerd socket.
pub fn setup() -> String {
    static SOCK: OnceLock<String> = OnceLock::new();
    SOCK.get_or_init(|| {
        setup_script("docker.sh", &[]).expect("docker setup");
        let sock = setup_script("containerd.sh", &[]).expect("containerd setup");
        setup_script("busybox-image.sh", &[&sock]).expect("image setup");
        sock
    })
    .clone()
}

/// Runs a command; its stdout (trimmed) or an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn mntns_of(pid: u32) -> Result<u64> {
    Ok(std::fs::metadata(format!("/proc/{pid}/ns/mnt"))?.ino())
}

/// A Docker container removed (`docker rm -f`) when dropped.
pub struct DockerContainer {
    pub name: String,
    pub id: String,
}

impl DockerContainer {
    pub fn run(name: &str, extra: &[&str]) -> Result<Self> {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "sleep", "300"]);
        let id = run("docker", &args)?;
        Ok(DockerContainer {
            name: name.to_string(),
            id,
        })
    }

    /// A container running `sh -c script`.
    pub fn run_script(name: &str, script: &str) -> Result<Self> {
        let id = run(
            "docker",
            &["run", "-d", "--name", name, IMAGE, "sh", "-c", script],
        )?;
        Ok(DockerContainer {
            name: name.to_string(),
            id,
        })
    }

    pub fn pid(&self) -> Result<u32> {
        Ok(run("docker", &["inspect", "-f", "{{.State.Pid}}", &self.id])?.parse()?)
    }

    pub fn remove(&self) -> Result<()> {
        run("docker", &["rm", "-f", &self.id]).map(|_| ())
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        let _ = run("docker", &["rm", "-f", &self.id]);
    }
}

/// A containerd container (ctr) killed and deleted when dropped.
pub struct CtrContainer {
    pub sock: String,
    pub ns: String,
    pub id: String,
}

impl CtrContainer {
    pub fn run(sock: &str, ns: &str, id: &str, labels: &[(&str, &str)]) -> Result<Self> {
        let label_args: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["-a", sock, "-n", ns, "run", "-d"];
        for l in &label_args {
            args.extend_from_slice(&["--label", l]);
        }
        args.extend_from_slice(&[CTR_IMAGE, id, "sleep", "300"]);
        run("ctr", &args)?;
        Ok(CtrContainer {
            sock: sock.to_string(),
            ns: ns.to_string(),
            id: id.to_string(),
        })
    }

    pub fn ctr(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-a", self.sock.as_str(), "-n", self.ns.as_str()];
        all.extend_from_slice(args);
        run("ctr", &all)
    }

    pub fn pid(&self) -> Result<u32> {
        let tasks = self.ctr(&["tasks", "ls"])?;
        for line in tasks.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() == Some(&self.id.as_str()) {
                return Ok(f.get(1).context("no pid column")?.parse()?);
            }
        }
        bail!("no task {} in {}", self.id, self.ns)
    }

    pub fn remove(&self) -> Result<()> {
        let _ = self.ctr(&["tasks", "kill", "-s", "KILL", &self.id]);
        // The task can only be deleted once it has exited.
        for _ in 0..50 {
            if self.ctr(&["tasks", "delete", &self.id]).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.ctr(&["containers", "delete", &self.id]).map(|_| ())
    }
}

impl Drop for CtrContainer {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Waits for the first event matching `f`.
pub async fn wait_event(
    rx: &mut broadcast::Receiver<ContainerEvent>,
    secs: u64,
    mut f: impl FnMut(&ContainerEvent) -> bool,
) -> Result<ContainerEvent> {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(ev) if f(&ev) => return Ok(ev),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => bail!("event channel: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(secs), wait)
        .await
        .with_context(|| format!("no matching event within {secs}s"))?
}

pub fn added_named(name: &str) -> impl FnMut(&ContainerEvent) -> bool + '_ {
    move |ev| matches!(ev, ContainerEvent::Added(c) if c.name == name)
}

pub fn removed_id(id: &str) -> impl FnMut(&ContainerEvent) -> bool + '_ {
    move |ev| matches!(ev, ContainerEvent::Removed(c) if c.id == id)
}

/// Polls `f` until it returns `Some`.
pub async fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("condition not met within {secs}s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pids whose /proc/<pid>/cgroup mentions `needle`.
pub fn pids_in_cgroup(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            if cg.contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

pub fn find<'a>(all: &'a [Arc<Container>], name: &str) -> Option<&'a Arc<Container>> {
    all.iter().find(|c| c.name == name)
}
