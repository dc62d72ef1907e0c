//! Helpers for the distribution tests: local registries (Debian's docker-registry started by
//! tests/setup/registry.sh), an `ig` with its own store and home, and "events arrive" checks.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{stderr_of, stdout_of, Ig};

pub const GADGET_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/trace_open");
const SETUP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/setup/registry.sh");

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A registry on 127.0.0.1, stopped on drop.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub host: String,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with(&[])
    }

    /// With htpasswd (bcrypt) auth for one user.
    pub fn with_auth(user: &str, password: &str) -> Registry {
        Self::start_with(&[user, password])
    }

    fn start_with(auth: &[&str]) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..3 {
            let port = free_port();
            let status = Command::new("bash")
                .arg(SETUP)
                .arg("start")
                .arg(dir.path())
                .arg(port.to_string())
                .args(auth)
                .status()
                .expect("run tests/setup/registry.sh");
            if status.success() {
                return Registry {
                    dir,
                    host: format!("127.0.0.1:{port}"),
                };
            }
        }
        panic!("cannot start a registry (see tests/setup/registry.sh)");
    }

    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host)
    }

    /// The file holding a blob in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(SETUP)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// An `ig` with a private store and a private home (credentials, keys).
pub struct Dist {
    pub ig: Ig,
    pub home: tempfile::TempDir,
}

impl Dist {
    pub fn new() -> Dist {
        Dist {
            ig: Ig::new(),
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.ig.cmd(args);
        c.env("HOME", self.home.path());
        for var in [
            "IG_AUTH_FILE",
            "XDG_CONFIG_HOME",
            "DOCKER_CONFIG",
            "IG_PUBLIC_KEYS",
            "IG_INSECURE_REGISTRIES",
        ] {
            c.env_remove(var);
        }
        c
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run ig")
    }

    /// Runs `ig`, expecting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.output(args);
        assert!(
            o.status.success(),
            "ig {args:?} failed:\n{}{}",
            stdout_of(&o),
            stderr_of(&o)
        );
        stdout_of(&o)
    }

    /// Runs `ig`, expecting failure; returns stderr.
    pub fn fail(&self, args: &[&str]) -> String {
        let o = self.output(args);
        assert!(
            !o.status.success(),
            "ig {args:?} succeeded:\n{}",
            stdout_of(&o)
        );
        stderr_of(&o)
    }

    /// Same, with `input` on stdin.
    pub fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ig");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait ig")
    }

    pub fn store(&self) -> &Path {
        self.ig.store.path()
    }

    /// Builds the test gadget as `reference`; returns the index digest.
    pub fn build(&self, reference: &str) -> String {
        let out = self.ok(&["image", "build", GADGET_DIR, "-t", reference]);
        out.split_whitespace()
            .find_map(|w| w.strip_prefix("(").and_then(|w| w.strip_suffix(")")))
            .filter(|d| d.starts_with("sha256:"))
            .unwrap_or_else(|| panic!("no digest in {out:?}"))
            .to_string()
    }

    /// Generates a key pair `<home>/<name>.key|.pub`; returns the two paths.
    pub fn keygen(&self, name: &str) -> (String, String) {
        let prefix = self.home.path().join(name);
        let prefix = prefix.to_str().expect("utf-8 path");
        self.ok(&["image", "keygen", prefix]);
        (format!("{prefix}.key"), format!("{prefix}.pub"))
    }
}

/// Runs `ig run REFERENCE --host -o json` with `extra` flags while this process opens a
/// marker file; true when the event for that file arrives. On failure to start, returns the
/// stderr in `Err`.
pub fn run_sees_open(ig: &Ig, reference: &str, extra: &[&str]) -> Result<(), String> {
    let file = tempfile::NamedTempFile::new().expect("marker file");
    let path = file.path().to_str().expect("utf-8 path").to_string();
    let mut args = vec!["run", reference, "--host", "-o", "json", "--timeout", "15"];
    args.extend_from_slice(extra);
    let running = ig.spawn(&args);
    let found = running.wait_event(
        Duration::from_secs(12),
        || {
            let _ = std::fs::read(&path);
        },
        |e| e["fname"].as_str() == Some(path.as_str()),
    );
    let (_, _, stderr) = running.stop();
    match found {
        Some(_) => Ok(()),
        None => Err(stderr),
    }
}
