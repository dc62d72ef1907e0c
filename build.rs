//! Compiles the built-in gadgets (`gadgets/*/program.bpf.c`) with clang and embeds their objects,
//! their `gadget.yaml` and the gadget API headers in the binary, so a fresh install can seed its
//! local store and run `ig run trace_exec` offline.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const ARCHS: [(&str, &str, &str); 2] = [
    ("amd64", "-D__TARGET_ARCH_x86", "x86_64"),
    ("arm64", "-D__TARGET_ARCH_arm64", "arm64"),
];

fn main() {
    compile_protos();
    let root =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for dir in ["bpf", "gadgets", "vmlinux"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=IG_CLANG");
    println!("cargo:rerun-if-env-changed=IG_BUILTIN_GADGETS");
    // A comma-separated list restricts which built-in gadgets are embedded (all by default).
    let only: Option<Vec<String>> = env::var("IG_BUILTIN_GADGETS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());

    let mut code = String::from("pub static HEADERS: &[(&str, &[u8])] = &[\n");
    for (rel, path) in headers(&root) {
        writeln!(
            code,
            "    ({rel:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .ok();
    }
    code.push_str("];\n\npub static BUILTINS: &[BuiltinGadget] = &[\n");

    let mut gadgets: Vec<PathBuf> = fs::read_dir(root.join("gadgets"))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    gadgets.sort();
    for dir in gadgets {
        if !dir.join("gadget.yaml").exists() || !dir.join("program.bpf.c").exists() {
            continue;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        let mut objects = String::new();
        for (arch, define, kdir) in ARCHS {
            let obj = out.join(format!("{name}.{arch}.o"));
            match compile(&root, &dir, define, kdir, &obj) {
                Ok(()) => {
                    writeln!(
                        objects,
                        "({arch:?}, include_bytes!({:?})),",
                        obj.display().to_string()
                    )
                    .ok();
                }
                Err(e) if arch == "amd64" => {
                    panic!("built-in gadget {name} does not compile:\n{e}")
                }
                Err(e) => println!(
                    "cargo:warning=built-in gadget {name}: {arch} skipped: {}",
                    e.lines().find(|l| l.contains("error")).unwrap_or("")
                ),
            }
        }
        let yaml = dir.join("gadget.yaml").display().to_string();
        writeln!(
            code,
            "    BuiltinGadget {{ name: {name:?}, metadata: include_bytes!({yaml:?}), objects: &[{objects}] }},"
        )
        .ok();
    }
    code.push_str("];\n");
    fs::write(out.join("embedded.rs"), code).expect("write embedded.rs");
}

/// The gadget API headers and each architecture's vmlinux.h, keyed by their include path.
fn headers(root: &Path) -> Vec<(String, PathBuf)> {
    let mut list = Vec::new();
    if let Ok(rd) = fs::read_dir(root.join("bpf/gadget")) {
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "h") {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                list.push((format!("gadget/{name}"), p));
            }
        }
    }
    for (_, _, kdir) in ARCHS {
        let p = root.join("vmlinux").join(kdir).join("vmlinux.h");
        if p.exists() {
            list.push((format!("{kdir}/vmlinux.h"), p));
        }
    }
    list.sort();
    list
}

fn compile(root: &Path, dir: &Path, define: &str, kdir: &str, obj: &Path) -> Result<(), String> {
    let clang = env::var("IG_CLANG").unwrap_or_else(|_| "clang".into());
    let mut vmlinux = root.join("vmlinux").join(kdir);
    let mut fallback = None;
    if !vmlinux.join("vmlinux.h").exists() {
        vmlinux = root.join("vmlinux/x86_64");
        // gadget/gadget.h then adds what the x86_64 types lack for this architecture.
        fallback = Some("-DIG_VMLINUX_X86_64_FALLBACK");
    }
    let output = Command::new(&clang)
        .args([
            "-target",
            "bpf",
            "-O2",
            "-g",
            "-Wall",
            "-Wno-unused-function",
            define,
        ])
        .args(fallback)
        .arg("-I")
        .arg(root.join("bpf"))
        .arg("-I")
        .arg(&vmlinux)
        .arg("-I")
        .arg(dir)
        .args(cflags(dir))
        .arg("-c")
        .arg(dir.join("program.bpf.c"))
        .arg("-o")
        .arg(obj)
        .output()
        .map_err(|e| {
            format!("cannot run {clang}: {e} (install clang: apt-get install clang llvm)")
        })?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let strip = env::var("IG_LLVM_STRIP").unwrap_or_else(|_| "llvm-strip".into());
    let status = Command::new(&strip)
        .arg("-g")
        .arg(obj)
        .status()
        .map_err(|e| format!("cannot run {strip}: {e} (install llvm)"))?;
    if !status.success() {
        return Err(format!("{strip} failed"));
    }
    Ok(())
}

/// The `cflags` of a gadget's build.yaml: an inline list (`cflags: ["-mcpu=v3"]`) or a block
/// list of `- flag` lines. `ig image build` reads the same file with a YAML parser.
fn cflags(dir: &Path) -> Vec<String> {
    let text = fs::read_to_string(dir.join("build.yaml")).unwrap_or_default();
    let mut flags = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("cflags:") {
            let rest = rest.trim();
            if let Some(inline) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                flags.extend(inline.split(',').map(unquote).filter(|f| !f.is_empty()));
            } else {
                in_block = rest.is_empty();
            }
        } else if in_block {
            match trimmed.strip_prefix("- ") {
                Some(flag) => flags.push(unquote(flag)),
                None if trimmed.is_empty() || trimmed.starts_with('#') => {}
                None => in_block = false,
            }
        }
    }
    flags
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').trim_matches('\'').to_string()
}

/// The daemon's gRPC API (`proto/daemon.proto`) as Rust types, client and server.
fn compile_protos() {
    println!("cargo:rerun-if-changed=proto");
    if let Err(e) = tonic_build::configure()
        .bytes(["."])
        // Instance specs are persisted, and `ig show` prints them, as JSON/YAML.
        .message_attribute(
            ".",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .enum_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .compile_protos(&["proto/daemon.proto"], &["proto"])
    {
        panic!("compiling proto/daemon.proto (is protoc installed?): {e}");
    }
}
