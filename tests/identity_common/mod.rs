//! Helpers for the container-identity tests (container_identity, trace_exec_stale_fields,
//! container_churn): starting `ig` with `IG_STATS=1` and waiting until its programs are
//! attached, running short-lived containers with Docker and ctr, cleaning them up, and
//! describing events compactly for failure messages.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{args_of, Ig, Running};
use crate::containers_common::{run, CTR_IMAGE, IMAGE};

/// How long `ig` may take to load and attach its programs.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `ig` (with `IG_STATS=1`) and returns once its BPF programs are attached.
pub fn start_ig(ig: &Ig, args: &[&str]) -> Running {
    let mut running = ig.spawn_with_env(args, &[("IG_STATS", "1")]);
    wait_attached(&mut running, args);
    running
}

/// The BPF links `pid` holds: one per attached program.
pub fn bpf_links(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path())
                .map(|l| l.to_string_lossy().contains("bpf_link"))
                .unwrap_or(false)
        })
        .count()
}

/// Waits until `ig` holds BPF links and their number has not changed for 300 ms: its
/// programs are attached (the runtimes were connected before). It prints nothing when it
/// attaches and `-c NAME` of a container not started yet gives no event to wait for, so the
/// links are the one signal that works for every run.
pub fn wait_attached(running: &mut Running, args: &[&str]) {
    let pid = running.child.id();
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    let mut last = 0;
    let mut stable_since = Instant::now();
    loop {
        if !running.child_alive() {
            panic!(
                "ig {} exited before attaching; stderr:\n{}",
                args.join(" "),
                running.stderr_text()
            );
        }
        let n = bpf_links(pid);
        if n != last {
            last = n;
            stable_since = Instant::now();
        } else if n > 0 && stable_since.elapsed() >= Duration::from_millis(300) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ig {} did not attach within {ATTACH_TIMEOUT:?} ({n} BPF links); stderr:\n{}",
            args.join(" "),
            running.stderr_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Stops `ig` with SIGINT; asserts it exited successfully; returns its JSON events and stderr.
pub fn stop_ig(running: Running) -> (Vec<Value>, String) {
    let (status, lines, stderr) = running.stop();
    assert!(
        status.success(),
        "ig exited with {status}; stderr:\n{stderr}"
    );
    let events = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (events, stderr)
}

/// The `ig: stats: …` line of a run's stderr, if any.
pub fn stats_line(stderr: &str) -> Option<&str> {
    stderr.lines().find(|l| l.starts_with("ig: stats:"))
}

pub fn name_of(e: &Value) -> &str {
    e["runtime"]["containerName"].as_str().unwrap_or("")
}

pub fn runtime_of(e: &Value) -> &str {
    e["runtime"]["runtimeName"].as_str().unwrap_or("")
}

pub fn id_of(e: &Value) -> &str {
    e["runtime"]["containerId"].as_str().unwrap_or("")
}

pub fn str_field<'a>(e: &'a Value, field: &str) -> &'a str {
    e[field].as_str().unwrap_or("")
}

/// One line per event: what the assertions look at.
pub fn brief(e: &Value) -> String {
    format!(
        "name={:?} runtime={:?} id={:?} mntns={} comm={:?} pid={} args={:?} error={:?} cwd={:?} file={:?} exepath={:?} upper_layer={}",
        name_of(e),
        runtime_of(e),
        id_of(e),
        e["mntns_id"],
        str_field(e, "comm"),
        e["pid"],
        args_of(e),
        str_field(e, "error"),
        str_field(e, "cwd"),
        str_field(e, "file"),
        str_field(e, "exepath"),
        e["upper_layer"],
    )
}

/// The events, one per line, at most `max` of them.
pub fn briefs<'a>(events: impl IntoIterator<Item = &'a Value>, max: usize) -> String {
    let all: Vec<&Value> = events.into_iter().collect();
    let mut out: Vec<String> = all.iter().take(max).map(|e| brief(e)).collect();
    if all.len() > max {
        out.push(format!("… and {} more", all.len() - max));
    }
    if out.is_empty() {
        "(no events)".to_string()
    } else {
        out.join("\n")
    }
}

/// Waits (at most `timeout`) until `done` holds for the events printed so far.
pub fn wait_until(running: &Running, timeout: Duration, done: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done(&running.events()) {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `docker run --rm --name NAME [extra] IMAGE cmd…`, to completion; its stdout.
pub fn docker_run_rm(name: &str, extra: &[&str], cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--name", name];
    args.extend_from_slice(extra);
    args.push(IMAGE);
    args.extend_from_slice(cmd);
    run("docker", &args).unwrap_or_else(|e| panic!("docker run {name}: {e:#}"))
}

/// `ctr run --rm IMAGE ID cmd…` in containerd namespace `ns`, to completion; its stdout.
pub fn ctr_run_rm(sock: &str, ns: &str, id: &str, cmd: &[&str]) -> String {
    let mut args = vec!["-a", sock, "-n", ns, "run", "--rm", CTR_IMAGE, id];
    args.extend_from_slice(cmd);
    run("ctr", &args).unwrap_or_else(|e| panic!("ctr run {ns}/{id}: {e:#}"))
}

/// Imports the test image into containerd namespace `ns` unless it is there already.
pub fn ensure_ctr_namespace(sock: &str, ns: &str) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let listed = run(
        "ctr",
        &[
            "-a",
            sock,
            "-n",
            ns,
            "images",
            "check",
            &format!("name=={CTR_IMAGE}"),
        ],
    )
    .unwrap_or_default();
    if listed.contains(CTR_IMAGE) {
        return;
    }
    let status = Command::new("bash")
        .args([
            "-c",
            &format!("docker save {IMAGE} | ctr -a '{sock}' -n '{ns}' images import -"),
        ])
        .stdout(Stdio::null())
        .status()
        .expect("bash");
    assert!(
        status.success(),
        "importing {IMAGE} into containerd namespace {ns}"
    );
}

/// Removes a Docker container by name when dropped (a no-op for one `--rm` already removed).
pub struct DockerGuard(pub String);

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Kills and deletes a containerd container when dropped (a no-op for one already removed).
pub struct CtrGuard {
    pub sock: String,
    pub ns: String,
    pub id: String,
}

impl CtrGuard {
    pub fn new(sock: &str, ns: &str, id: &str) -> Self {
        CtrGuard {
            sock: sock.to_string(),
            ns: ns.to_string(),
            id: id.to_string(),
        }
    }
}

fn quiet(program: &str, args: &[&str]) -> Option<Output> {
    Command::new(program).args(args).output().ok()
}

impl Drop for CtrGuard {
    fn drop(&mut self) {
        let base = ["-a", self.sock.as_str(), "-n", self.ns.as_str()];
        let with = |rest: &[&str]| {
            let mut a = base.to_vec();
            a.extend_from_slice(rest);
            quiet("ctr", &a)
        };
        let listed = with(&["containers", "ls", "-q"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if !listed.lines().any(|l| l.trim() == self.id) {
            return;
        }
        let _ = with(&["tasks", "kill", "-s", "SIGKILL", &self.id]);
        for _ in 0..30 {
            let gone = with(&["tasks", "delete", "-f", &self.id]).is_some_and(|o| {
                o.status.success() || String::from_utf8_lossy(&o.stderr).contains("not found")
            });
            if gone {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = with(&["containers", "delete", &self.id]);
    }
}

/// Removes, when dropped, every Docker container and every containerd container (in `ns`)
/// whose name starts with `prefix`: the churn's cleanup, also when a test fails midway.
pub struct PrefixCleanup {
    pub prefix: String,
    pub sock: String,
    pub ns: String,
}

impl Drop for PrefixCleanup {
    fn drop(&mut self) {
        if let Some(o) = quiet(
            "docker",
            &["ps", "-aq", "--filter", &format!("name=^{}", self.prefix)],
        ) {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = quiet("docker", &["rm", "-f", id]);
            }
        }
        if let Some(o) = quiet(
            "ctr",
            &["-a", &self.sock, "-n", &self.ns, "containers", "ls", "-q"],
        ) {
            for id in String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with(&self.prefix))
            {
                drop(CtrGuard::new(&self.sock, &self.ns, id));
            }
        }
    }
}

/// The Docker container ID `docker run --cidfile` wrote.
pub fn read_cidfile(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
