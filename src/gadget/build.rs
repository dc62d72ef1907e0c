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

/// An OCI platform architecture and how clang is told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    pub fn oci_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    fn target_define(self) -> &'static str {
        match self {
            Arch::Amd64 => "-D__TARGET_ARCH_x86",
            Arch::Arm64 => "-D__TARGET_ARCH_arm64",
        }
    }

    fn kernel_dir(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

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
            clang: std::env::var("IG_CLANG").unwrap_or_else(|_| "clang".into()),
            strip: std::env::var("IG_LLVM_STRIP").unwrap_or_else(|_| "llvm-strip".into()),
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

    fn vmlinux_dir(&self, arch: Arch) -> Option<PathBuf> {
        let own = self.include_dir.join(arch.kernel_dir());
        if own.join("vmlinux.h").exists() {
            return Some(own);
        }
        // Programs that only use CO-RE reads and tracepoint contexts compile for arm64 against
        // the x86_64 types; CO-RE relocates the offsets at load time. kprobe arguments read
        // arm64's `struct user_pt_regs`, which gadget/gadget.h supplies in this case
        // (IG_VMLINUX_X86_64_FALLBACK); a program that needs other arm64 types fails to compile
        // and that architecture is skipped.
        let fallback = self.include_dir.join(Arch::Amd64.kernel_dir());
        fallback.join("vmlinux.h").exists().then_some(fallback)
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
        let vmlinux = self.vmlinux_dir(arch).ok_or_else(|| GadgetError::Tool {
            tool: "clang".into(),
            reason: format!("no vmlinux.h for {}", arch.oci_name()),
        })?;
        // gadget/gadget.h adds what the x86_64 types lack for another architecture.
        let fallback = (vmlinux != self.include_dir.join(arch.kernel_dir()))
            .then_some("-DIG_VMLINUX_X86_64_FALLBACK");
        let out = tempfile::Builder::new()
            .prefix(&format!("{}-", arch.oci_name()))
            .suffix(".o")
            .tempfile_in(&self.work_dir)
            .map_err(|source| GadgetError::Io {
                path: self.work_dir.clone(),
                source,
            })?;
        let mut clang = Command::new(&self.clang);
        clang
            .args([
                "-target",
                "bpf",
                "-O2",
                "-g",
                "-Wall",
                "-Wno-unused-function",
            ])
            .arg(arch.target_define())
            .args(fallback)
            .arg("-I")
            .arg(&self.include_dir)
            .arg("-I")
            .arg(&vmlinux)
            .arg("-I")
            .arg(dir)
            .args(&build.cflags)
            .arg("-c")
            .arg(&source)
            .arg("-o")
            .arg(out.path());
        let (status, stderr) =
            self.run(&mut clang, &self.clang, "install clang, or set IG_CLANG")?;
        if !status.success() {
            return Err(GadgetError::Compile {
                source_file: source,
                arch: arch.oci_name().into(),
                stderr,
            });
        }
        let mut strip = Command::new(&self.strip);
        strip.arg("-g").arg(out.path());
        let (status, _) = self.run(
            &mut strip,
            &self.strip,
            "install llvm, or set IG_LLVM_STRIP",
        )?;
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
