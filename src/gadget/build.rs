//! `ig image build`: compiles a gadget directory with the local clang, for each architecture the
//! headers allow, and checks the result against `gadget.yaml`.
//!
//! Everything a build writes (the objects, the compilers' messages) goes to one work directory
//! the caller owns and removes. A build can be cancelled (SIGTERM or SIGINT to `ig`): the
//! compiler running at that moment is stopped and waited for, so it leaves nothing behind, and
//! the build returns [`GadgetError::Interrupted`] for the caller to clean up and exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{GadgetError, GadgetSpec, Metadata};

pub use super::compile::Arch;
use super::compile::{self, Job};

/// `build.yaml`.
#[derive(Debug, Default, Deserialize)]
struct BuildFile {
    #[serde(default = "default_source")]
    ebpfsource: String,
    #[serde(default)]
    cflags: Vec<String>,
}

fn default_source() -> String {
    "program.bpf.c".into()
}

/// A built gadget: its metadata and one stripped object per architecture.
#[derive(Debug)]
pub struct BuiltGadget {
    pub metadata_yaml: Vec<u8>,
    pub metadata: Metadata,
    pub objects: Vec<(Arch, Vec<u8>)>,
    /// Architectures skipped, and why.
    pub skipped: Vec<(Arch, String)>,
}

fn read(path: &Path) -> Result<Vec<u8>, GadgetError> {
    std::fs::read(path).map_err(|source| GadgetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Where the gadget API and vmlinux headers are: `include/gadget/*.h` and
/// `include/<kernel arch>/vmlinux.h`.
pub struct Toolchain {
    pub include_dir: PathBuf,
    /// Where objects and compiler messages are written.
    pub work_dir: PathBuf,
    pub clang: String,
    pub strip: String,
    /// Set to a signal number to cancel the build.
    pub cancel: Arc<AtomicUsize>,
}

/// How often a running compiler is checked for exit or cancellation.
const POLL: Duration = Duration::from_millis(20);
/// How long a cancelled compiler gets to exit on SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(2);

impl Toolchain {
    pub fn from_env(include_dir: PathBuf, work_dir: PathBuf) -> Self {
        Toolchain {
            include_dir,
            work_dir,
            clang: compile::clang(),
            strip: compile::strip(),
            cancel: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Cancels when `flag` becomes non-zero (the signal number).
    pub fn with_cancel(mut self, flag: Arc<AtomicUsize>) -> Self {
        self.cancel = flag;
        self
    }

    fn cancelled(&self) -> Result<(), GadgetError> {
        match self.cancel.load(Ordering::SeqCst) {
            0 => Ok(()),
            sig => Err(GadgetError::Interrupted(sig as i32)),
        }
    }

    /// Runs a tool to completion, its stderr kept in the work directory; stops it (SIGTERM,
    /// then SIGKILL after a grace period) and waits for it when the build is cancelled.
    fn run(
        &self,
        cmd: &mut Command,
        tool: &str,
        hint: &str,
    ) -> Result<(std::process::ExitStatus, String), GadgetError> {
        self.cancelled()?;
        let log = tempfile::Builder::new()
            .prefix("stderr-")
            .tempfile_in(&self.work_dir)
            .map_err(|source| GadgetError::Io {
                path: self.work_dir.clone(),
                source,
            })?;
        let stderr = log.reopen().map_err(|source| GadgetError::Io {
            path: log.path().to_path_buf(),
            source,
        })?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| GadgetError::Tool {
                tool: tool.to_string(),
                reason: format!("{e} ({hint})"),
            })?;
        let wait_err = |source| GadgetError::Tool {
            tool: tool.to_string(),
            reason: format!("waiting for it: {source}"),
        };
        let status = loop {
            if let Some(status) = child.try_wait().map_err(wait_err)? {
                break status;
            }
            if let Err(e) = self.cancelled() {
                // SAFETY: signalling our own child, which has not been waited for yet.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let deadline = Instant::now() + GRACE;
                while child.try_wait().map_err(wait_err)?.is_none() {
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    std::thread::sleep(POLL);
                }
                return Err(e);
            }
            std::thread::sleep(POLL);
        };
        let text = std::fs::read(log.path()).unwrap_or_default();
        Ok((
            status,
            String::from_utf8_lossy(&text).trim_end().to_string(),
        ))
    }

    pub fn compile(&self, dir: &Path, arch: Arch) -> Result<Vec<u8>, GadgetError> {
        let build: BuildFile = match read(&dir.join("build.yaml")) {
            Ok(text) => serde_norway::from_slice(&text)
                .map_err(|e| GadgetError::BuildFile(e.to_string()))?,
            Err(_) => BuildFile {
                ebpfsource: default_source(),
                cflags: Vec::new(),
            },
        };
        // clang takes a file it does not know as linker input, warns and writes nothing;
        // the failure would then surface as llvm-strip's.
        if !build.ebpfsource.ends_with(".c") {
            return Err(GadgetError::BuildFile(format!(
                "ebpfsource `{}` is not a C file: ig compiles gadgets from C with clang",
                build.ebpfsource
            )));
        }
        let source = dir.join(&build.ebpfsource);
        if !source.exists() {
            return Err(GadgetError::Io {
                path: source,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let out = tempfile::Builder::new()
            .prefix(&format!("{}-", arch.oci_name()))
            .suffix(".o")
            .tempfile_in(&self.work_dir)
            .map_err(|source| GadgetError::Io {
                path: self.work_dir.clone(),
                source,
            })?;
        let job = Job {
            api_include: &self.include_dir,
            vmlinux_root: &self.include_dir,
            arch,
            gadget_dir: dir,
            source: &source,
            cflags: &build.cflags,
            output: out.path(),
        };
        let mut clang = job
            .clang_command(&self.clang)
            .map_err(|e| GadgetError::Tool {
                tool: "clang".into(),
                reason: e.to_string(),
            })?;
        let (status, stderr) = self.run(&mut clang, &self.clang, compile::CLANG_HINT)?;
        if !status.success() {
            return Err(GadgetError::Compile {
                source_file: source,
                arch: arch.oci_name().into(),
                stderr,
            });
        }
        let mut strip = compile::strip_command(&self.strip, out.path());
        let (status, _) = self.run(&mut strip, &self.strip, compile::STRIP_HINT)?;
        if !status.success() {
            return Err(GadgetError::Tool {
                tool: self.strip.clone(),
                reason: format!("exited with {status}"),
            });
        }
        read(out.path())
    }

    /// Compiles for every architecture and validates each object against `gadget.yaml`.
    /// The host architecture must build; others are skipped with the reason when they cannot.
    pub fn build(&self, dir: &Path) -> Result<BuiltGadget, GadgetError> {
        let metadata_yaml = read(&dir.join("gadget.yaml"))?;
        let metadata = Metadata::parse(&metadata_yaml)?;
        let host = Arch::host().unwrap_or(Arch::Amd64);
        let mut objects = Vec::new();
        let mut skipped = Vec::new();
        for arch in Arch::ALL {
            match self.compile(dir, arch) {
                Ok(obj) => {
                    GadgetSpec::analyze(&obj, metadata.clone())?;
                    objects.push((arch, obj));
                }
                Err(e @ GadgetError::Interrupted(_)) => return Err(e),
                Err(e) if arch != host => skipped.push((arch, first_line(&e.to_string()))),
                Err(e) => return Err(e),
            }
        }
        self.cancelled()?;
        Ok(BuiltGadget {
            metadata_yaml,
            metadata,
            objects,
            skipped,
        })
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| l.contains("error"))
        .unwrap_or_else(|| s.lines().next().unwrap_or(""))
        .to_string()
}
