//! The one compiler driver of ig: how a gadget's C source becomes a BPF object. `build.rs` uses
//! it for the built-in gadgets it embeds (`#[path]`-included there, so this file uses `std`
//! only), `ig image build` ([`super::build`]) for user gadgets. Both get the same clang command
//! line — target, optimisation, warnings, `__TARGET_ARCH_*`, include order, the arm64 fallback to
//! the x86_64 types — the same `llvm-strip -g`, and the same `IG_CLANG`/`IG_LLVM_STRIP`
//! overrides. Each runs the commands its own way: `build.rs` to completion, `ig image build`
//! under its cancellation (SIGTERM/SIGINT stop the compiler) with the output in its work dir.
//!
//! Why not `libbpf-cargo`: 0.25, the release built on our libbpf-rs 0.25, pins `libbpf-sys`
//! to `>=1.5.0, <=1.5.1` while libbpf-rs 0.25 here resolves 1.7, and `libbpf-sys` declares
//! `links = "bpf"`, so both cannot be in one build (later libbpf-cargo releases need a later
//! libbpf-rs, an upgrade of the loader outside this change). Beyond that, its single-object compiler
//! (`BpfObjBuilder`) is crate-private; the public `SkeletonBuilder::build` runs clang through
//! `Command::output()`, so a running compiler cannot be stopped when `ig image build` is
//! interrupted; it extracts libbpf's headers into temporary directories of its own under
//! `$TMPDIR`, outside the build's work directory (an interrupted build must leave nothing
//! behind); its errors are `anyhow` chains with the compiler's messages inside, not a status
//! and stderr to show; and as a normal dependency (needed at run time) it brings `cargo_metadata`,
//! `tracing-subscriber` and `memmap2` into the `ig` binary for one `clang` invocation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the C compiler (default `clang`).
pub const CLANG_ENV: &str = "IG_CLANG";
/// Environment variable naming the debug-info stripper (default `llvm-strip`).
pub const STRIP_ENV: &str = "IG_LLVM_STRIP";
/// What to do when the compiler cannot be started.
pub const CLANG_HINT: &str = "install clang (apt-get install clang llvm), or set IG_CLANG";
/// What to do when the stripper cannot be started.
pub const STRIP_HINT: &str = "install llvm (apt-get install llvm), or set IG_LLVM_STRIP";

/// The compiler: `$IG_CLANG`, else `clang` from `PATH`.
pub fn clang() -> String {
    std::env::var(CLANG_ENV).unwrap_or_else(|_| "clang".into())
}

/// The stripper: `$IG_LLVM_STRIP`, else `llvm-strip` from `PATH`.
pub fn strip() -> String {
    std::env::var(STRIP_ENV).unwrap_or_else(|_| "llvm-strip".into())
}

/// An OCI platform architecture and how clang is told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// The OCI `platform.architecture` (`amd64`, `arm64`).
    pub fn oci_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The define `bpf_tracing.h` reads to pick the architecture's `pt_regs` layout.
    pub fn target_define(self) -> &'static str {
        match self {
            Arch::Amd64 => "-D__TARGET_ARCH_x86",
            Arch::Arm64 => "-D__TARGET_ARCH_arm64",
        }
    }

    /// The kernel's name of the architecture: the folder of its `vmlinux.h`.
    pub fn kernel_dir(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The architecture this program runs on, if it is one gadgets are built for.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

/// Neither the architecture's own `vmlinux.h` nor the x86_64 one to fall back to exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoVmlinux(pub Arch);

impl fmt::Display for NoVmlinux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no vmlinux.h for {}", self.0.oci_name())
    }
}

/// One compilation: a C source for one architecture into one object.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// Directory holding the gadget API headers (`gadget/*.h`).
    pub api_include: &'a Path,
    /// Directory holding one `<kernel arch>/vmlinux.h` per architecture.
    pub vmlinux_root: &'a Path,
    pub arch: Arch,
    /// The gadget's directory (its own headers are included from there).
    pub gadget_dir: &'a Path,
    /// The C file to compile.
    pub source: &'a Path,
    /// Extra flags from the gadget's `build.yaml` (`cflags`), after ours.
    pub cflags: &'a [String],
    /// Where the object is written.
    pub output: &'a Path,
}

impl Job<'_> {
    /// The directory whose `vmlinux.h` the job compiles against, and whether it is the x86_64
    /// fallback for another architecture.
    ///
    /// Programs that only use CO-RE reads and tracepoint contexts compile for arm64 against the
    /// x86_64 types; CO-RE relocates the offsets at load time. kprobe arguments read arm64's
    /// `struct user_pt_regs`, which gadget/gadget.h supplies in this case
    /// (`IG_VMLINUX_X86_64_FALLBACK`); a program that needs other arm64 types fails to compile,
    /// and that architecture is skipped by the caller.
    pub fn vmlinux_dir(&self) -> Result<(PathBuf, bool), NoVmlinux> {
        let own = self.vmlinux_root.join(self.arch.kernel_dir());
        if own.join("vmlinux.h").exists() {
            return Ok((own, false));
        }
        let fallback = self.vmlinux_root.join(Arch::Amd64.kernel_dir());
        if fallback.join("vmlinux.h").exists() {
            return Ok((fallback, true));
        }
        Err(NoVmlinux(self.arch))
    }

    /// `clang -target bpf -O2 -g …  -c SOURCE -o OUTPUT`, ready to run. `-g` keeps BTF (the
    /// runtime reads tracers, params and event layouts from it); [`strip_command`] then drops
    /// the DWARF.
    pub fn clang_command(&self, clang: &str) -> Result<Command, NoVmlinux> {
        let (vmlinux, fallback) = self.vmlinux_dir()?;
        let mut cmd = Command::new(clang);
        cmd.args([
            "-target",
            "bpf",
            "-O2",
            "-g",
            "-Wall",
            "-Wno-unused-function",
        ])
        .arg(self.arch.target_define());
        if fallback {
            // gadget/gadget.h then adds what the x86_64 types lack for this architecture.
            cmd.arg("-DIG_VMLINUX_X86_64_FALLBACK");
        }
        cmd.arg("-I")
            .arg(self.api_include)
            .arg("-I")
            .arg(&vmlinux)
            .arg("-I")
            .arg(self.gadget_dir)
            .args(self.cflags)
            .arg("-c")
            .arg(self.source)
            .arg("-o")
            .arg(self.output);
        Ok(cmd)
    }
}

/// `llvm-strip -g OBJECT`: drops DWARF (it names build paths and is most of the object's size),
/// keeps BTF and BTF.ext.
pub fn strip_command(strip: &str, object: &Path) -> Command {
    let mut cmd = Command::new(strip);
    cmd.arg("-g").arg(object);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn arm64_falls_back_to_the_x86_64_types_and_none_is_named() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("o");
        let job = |arch| Job {
            api_include: root.path(),
            vmlinux_root: root.path(),
            arch,
            gadget_dir: root.path(),
            source: Path::new("program.bpf.c"),
            cflags: &[],
            output: &out,
        };
        let err = job(Arch::Arm64).clang_command("clang").unwrap_err();
        assert_eq!(err.to_string(), "no vmlinux.h for arm64");
        std::fs::create_dir(root.path().join("x86_64")).unwrap();
        std::fs::write(root.path().join("x86_64/vmlinux.h"), "").unwrap();
        let arm = args(&job(Arch::Arm64).clang_command("clang").unwrap());
        assert!(arm.contains(&"-D__TARGET_ARCH_arm64".to_string()));
        assert!(arm.contains(&"-DIG_VMLINUX_X86_64_FALLBACK".to_string()));
        let x86 = args(&job(Arch::Amd64).clang_command("clang").unwrap());
        assert!(!x86.contains(&"-DIG_VMLINUX_X86_64_FALLBACK".to_string()));
        assert_eq!(
            &x86[x86.len() - 4..],
            ["-c", "program.bpf.c", "-o", out.to_str().unwrap()]
        );
    }
}
