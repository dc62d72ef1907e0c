//! A real `ig daemon` on a temporary socket and state directory, and clients of it.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{ig_bin, stderr_of, Ig, Running};

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    /// Extra flags the daemon was started with (kept for restarts).
    pub flags: Vec<String>,
}

impl Daemon {
    /// Starts a daemon (Docker as its only runtime) and waits until it answers.
    pub fn start(flags: &[&str]) -> Daemon {
        crate::common::ensure_tracefs();
        let mut d = Daemon {
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            flags: flags.iter().map(|s| s.to_string()).collect(),
        };
        d.restart();
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/ig.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn remote(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// The daemon's command line with this test's socket and state directory.
    pub fn command(&self) -> Command {
        let mut c = Command::new(ig_bin());
        c.arg("daemon")
            .arg("--socket")
            .arg(self.socket())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(&self.flags)
            .env_remove("IG_REMOTE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    /// (Re)starts the daemon process and waits until `ig list` answers.
    pub fn restart(&mut self) {
        let child = self.command().spawn().expect("spawn ig daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let o = self.ig(&["list"]);
            if o.status.success() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let err = self.take_stderr();
                panic!("ig daemon exited with {status}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "ig daemon did not answer: {}",
                stderr_of(&o)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn take_stderr(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(e) = self.child.as_mut().and_then(|c| c.stderr.as_mut()) {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    /// Sends `signal` and waits for the exit; returns the exit status and the daemon's stderr.
    pub fn signal_and_wait(&mut self, signal: i32) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("daemon running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().expect("wait daemon");
        let mut s = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        (status, s)
    }

    /// `ig ARGS --remote THIS` with the given client args.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ig_bin());
        c.args(args)
            .env("IG_REMOTE", self.remote())
            .env_remove("RUST_BACKTRACE");
        c
    }

    pub fn ig(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run ig")
    }

    /// A client in the background (like `Ig::spawn`), talking to this daemon.
    pub fn spawn(&self, args: &[&str]) -> Running {
        Ig::new().spawn_with_env(args, &[("IG_REMOTE", &self.remote())])
    }

    /// `ig` with the daemon's own store (`ig image …` on what the daemon runs).
    pub fn store_cmd(&self, args: &[&str]) -> Output {
        Command::new(ig_bin())
            .args(args)
            .env("IG_STORE", self.state_dir().join("oci-store"))
            .output()
            .expect("run ig")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub use crate::common::bpf_ids_of;

/// How many BPF programs or links process `pid` holds (see [`bpf_ids_of`]).
pub fn bpf_objects_of(kind: &str, pid: u32) -> usize {
    bpf_ids_of(kind, pid).len()
}

/// Every BPF program or link id the kernel has now.
pub fn bpf_ids(kind: &str) -> Vec<u64> {
    let o = Command::new("bpftool")
        .args([kind, "show", "-j"])
        .output()
        .expect("bpftool (package bpftool)");
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
    list.iter().filter_map(|p| p["id"].as_u64()).collect()
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    f()
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `c` to completion with captured output; kills it and fails the test after `timeout`
/// (a daemon that should have refused to start would otherwise serve forever).
pub fn output_within(c: &mut Command, timeout: Duration) -> Output {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let reader = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout")));
    let err = reader(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!("{c:?} still running after {timeout:?}; stderr: {stderr}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Execs `/bin/true [ARG]` as fast as `threads` threads can, until stopped or `limit` execs
/// (0: no limit) were started.
pub struct Storm {
    stop: Arc<AtomicBool>,
    execs: Arc<AtomicU64>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Storm {
    pub fn start(threads: usize) -> Storm {
        Storm::of(threads, None, 0)
    }

    /// `limit` execs of `/bin/true ARG`.
    pub fn exactly(threads: usize, arg: &str, limit: u64) -> Storm {
        Storm::of(threads, Some(arg.to_string()), limit)
    }

    fn of(threads: usize, arg: Option<String>, limit: u64) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let execs = Arc::new(AtomicU64::new(0));
        let started = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (stop, execs, started) = (stop.clone(), execs.clone(), started.clone());
                let arg = arg.clone();
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if limit > 0 && started.fetch_add(1, Ordering::Relaxed) >= limit {
                            break;
                        }
                        let mut c = Command::new("/bin/true");
                        c.args(arg.iter())
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null());
                        let ran = c.status().is_ok_and(|s| s.success());
                        assert!(ran, "/bin/true failed to run");
                        execs.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Storm {
            stop,
            execs,
            threads,
        }
    }

    pub fn execs(&self) -> u64 {
        self.execs.load(Ordering::Relaxed)
    }

    /// Waits for a limited storm to end; how many execs it made.
    pub fn wait(mut self) -> u64 {
        for t in std::mem::take(&mut self.threads) {
            t.join().expect("a storm thread failed");
        }
        self.execs()
    }

    /// Stops it; how many execs it made.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.wait()
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The N of each "ig: warning: N events missed" line.
pub fn missed_warnings(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter(|l| l.contains("events missed"))
        .filter_map(|l| {
            l.strip_prefix("ig: warning: ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}
