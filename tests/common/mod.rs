//! Helpers shared by the integration tests: the `ig` binary with a private store, background
//! runs whose output is collected line by line, and waiting with a deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

pub fn ig_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ig"))
}

/// A unique marker for a test's commands, so parallel tests never see each other's events.
pub fn marker(name: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}-{}-{n}", std::process::id())
}

/// Mounts tracefs once (tracepoints need it).
pub fn ensure_tracefs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !Path::new("/sys/kernel/tracing/events").exists() {
            let _ = Command::new("mount")
                .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
                .status();
        }
    });
}

/// An `ig` with its own store under a temporary directory.
pub struct Ig {
    /// Shared with every [`Running`] spawned from it, so `Ig::new().spawn(..)` keeps the store
    /// alive as long as the process that reads it.
    pub store: Arc<tempfile::TempDir>,
}

impl Ig {
    pub fn new() -> Self {
        ensure_tracefs();
        Ig {
            store: Arc::new(tempfile::tempdir().expect("tempdir")),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ig_bin());
        c.args(args)
            .env("IG_STORE", self.store.path())
            .env_remove("RUST_BACKTRACE");
        c
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run ig")
    }

    /// Starts `ig` in the background, collecting stdout and stderr lines.
    pub fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_with_env(args, &[])
    }

    /// [`Ig::spawn`] with extra environment variables.
    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = self
            .cmd(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ig");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Running {
            child,
            stdout,
            stderr,
            _store: Some(self.store.clone()),
        }
    }
}

fn collect<R: std::io::Read + Send + 'static>(r: R) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            sink.lock().expect("lock").push(line);
        }
    });
    lines
}

pub struct Running {
    pub child: Child,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// The store the process reads, if the test made one for it.
    pub _store: Option<Arc<tempfile::TempDir>>,
}

impl Running {
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lock().expect("lock").clone()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    /// JSON events printed so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until some event satisfies `pred`, running `poke` between checks (e.g. to exec a
    /// warm-up command until the tracer is attached).
    pub fn wait_event(
        &self,
        timeout: Duration,
        mut poke: impl FnMut(),
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return Some(e);
            }
            poke();
            thread::sleep(Duration::from_millis(100));
        }
        self.events().into_iter().find(|e| pred(e))
    }

    /// Waits until an exec of a fresh marker (`/bin/true MARKER`) shows up: a trace_exec run
    /// is attached. Panics with the run's stderr when none does within `timeout`.
    pub fn wait_attached(&self, timeout: Duration) {
        let warm = marker("warmup");
        let seen = self.wait_event(
            timeout,
            || exec("/bin/true", &[&warm]),
            |e| args_of(e).contains(&warm),
        );
        assert!(
            seen.is_some(),
            "tracer never attached; stderr:\n{}",
            self.stderr_text()
        );
    }

    pub fn child_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGINT and waits for the exit status.
    pub fn stop(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().expect("wait ig");
        thread::sleep(Duration::from_millis(100));
        (status, self.lines(), self.stderr_text())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `args` as JSON strings.
pub fn args_of(e: &serde_json::Value) -> Vec<String> {
    e["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a command to completion, ignoring its result (it may be meant to fail).
pub fn exec(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `ig image build DIR -t TAG`.
pub fn build(ig: &Ig, dir: &Path, tag: &str) -> Output {
    ig.output(&["image", "build", dir.to_str().expect("utf8"), "-t", tag])
}

/// A failure as a user should see it: non-zero, `want` on stderr, no panic.
pub fn assert_clean_failure(out: &Output, want: &str) {
    let err = stderr_of(out);
    assert!(
        !out.status.success(),
        "expected failure, got success; stdout: {}",
        stdout_of(out)
    );
    assert!(err.contains(want), "stderr lacks {want:?}:\n{err}");
    assert!(!err.contains("panicked"), "panic:\n{err}");
}

/// Ids of the BPF programs (`kind` "prog") or links ("link") process `pid` holds open, from
/// its fds' `/proc/PID/fdinfo` (`prog_id:` / `link_id:` lines, written by the kernel).
pub fn bpf_ids_of(kind: &str, pid: u32) -> Vec<u64> {
    let key = format!("{kind}_id:");
    let mut ids = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for entry in dir.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            if let Some(id) = line.strip_prefix(&key).and_then(|v| v.trim().parse().ok()) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    ids
}

/// Names of the BPF programs process `pid` holds (from [`bpf_ids_of`] and `bpftool`).
pub fn bpf_prog_names_of(pid: u32) -> Vec<String> {
    bpf_ids_of("prog", pid)
        .into_iter()
        .filter_map(|id| {
            let o = Command::new("bpftool")
                .args(["prog", "show", "id", &id.to_string(), "-j"])
                .output()
                .ok()?;
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
            v["name"].as_str().map(String::from)
        })
        .collect()
}
