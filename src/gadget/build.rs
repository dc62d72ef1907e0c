//! `ig image build`: compiles a gadget directory with the local clang, for each architecture the
//! headers allow, and checks the result against `gadget.yaml`.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    pub clang: String,
    pub strip: String,
}

impl Toolchain {
    pub fn from_env(include_dir: PathBuf) -> Self {
        Toolchain {
            include_dir,
            clang: std::env::var("IG_CLANG").unwrap_or_else(|_| "clang".into()),
            strip: std::env::var("IG_LLVM_STRIP").unwrap_or_else(|_| "llvm-strip".into()),
        }
    }

    fn vmlinux_dir(&self, arch: Arch) -> Option<PathBuf> {
        let own = self.include_dir.join(arch.kernel_dir());
        if own.join("vmlinux.h").exists() {
            return Some(own);
        }
        // Programs that only use CO-RE reads and tracepoint contexts compile for arm64 against
        // the x86_64 types; CO-RE relocates the offsets at load time. Ones that need arm64's
        // pt_regs fail to compile and that architecture is skipped.
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
        let out = tempfile::Builder::new()
            .suffix(".o")
            .tempfile()
            .map_err(|source| GadgetError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let output = Command::new(&self.clang)
            .args([
                "-target",
                "bpf",
                "-O2",
                "-g",
                "-Wall",
                "-Wno-unused-function",
            ])
            .arg(arch.target_define())
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
            .arg(out.path())
            .output()
            .map_err(|e| GadgetError::Tool {
                tool: self.clang.clone(),
                reason: format!("{e} (install clang, or set IG_CLANG)"),
            })?;
        if !output.status.success() {
            return Err(GadgetError::Compile {
                source_file: source,
                arch: arch.oci_name().into(),
                stderr: String::from_utf8_lossy(&output.stderr)
                    .trim_end()
                    .to_string(),
            });
        }
        let status = Command::new(&self.strip)
            .arg("-g")
            .arg(out.path())
            .status()
            .map_err(|e| GadgetError::Tool {
                tool: self.strip.clone(),
                reason: format!("{e} (install llvm, or set IG_LLVM_STRIP)"),
            })?;
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
                Err(e) if arch != host => skipped.push((arch, first_line(&e.to_string()))),
                Err(e) => return Err(e),
            }
        }
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
