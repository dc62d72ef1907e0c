//! Compiles the built-in gadgets (`gadgets/*/program.bpf.c`) with clang and embeds their objects,
//! their `gadget.yaml` and the gadget API headers in the binary, so a fresh install can seed its
//! local store and run `ig run trace_exec` offline.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

// The compiler driver `ig image build` uses too: one command line for built-in and user gadgets.
// Not every item of it is needed here (`Arch::host`).
#[allow(dead_code)]
#[path = "src/gadget/compile.rs"]
mod compile;

use compile::{Arch, Job};

fn main() {
    compile_protos();
    let root =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for dir in ["bpf", "gadgets", "vmlinux"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed={}", compile::CLANG_ENV);
    println!("cargo:rerun-if-env-changed={}", compile::STRIP_ENV);
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
        for arch in Arch::ALL {
            let oci = arch.oci_name();
            let obj = out.join(format!("{name}.{oci}.o"));
            match build_object(&root, &dir, arch, &obj) {
                Ok(()) => {
                    writeln!(
                        objects,
                        "({oci:?}, include_bytes!({:?})),",
                        obj.display().to_string()
                    )
                    .ok();
                }
                Err(e) if arch == Arch::Amd64 => {
                    panic!("built-in gadget {name} does not compile:\n{e}")
                }
                Err(e) => println!(
                    "cargo:warning=built-in gadget {name}: {oci} skipped: {}",
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
    for arch in Arch::ALL {
        let kdir = arch.kernel_dir();
        let p = root.join("vmlinux").join(kdir).join("vmlinux.h");
        if p.exists() {
            list.push((format!("{kdir}/vmlinux.h"), p));
        }
    }
    list.sort();
    list
}

/// Compiles and strips one built-in gadget for `arch` with the shared driver; the error is
/// the compiler's output.
fn build_object(root: &Path, dir: &Path, arch: Arch, obj: &Path) -> Result<(), String> {
    let clang = compile::clang();
    let flags = cflags(dir);
    let job = Job {
        api_include: &root.join("bpf"),
        vmlinux_root: &root.join("vmlinux"),
        arch,
        gadget_dir: dir,
        source: &dir.join("program.bpf.c"),
        cflags: &flags,
        output: obj,
    };
    let output = job
        .clang_command(&clang)
        .map_err(|e| e.to_string())?
        .output()
        .map_err(|e| format!("cannot run {clang}: {e} ({})", compile::CLANG_HINT))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let strip = compile::strip();
    let status = compile::strip_command(&strip, obj)
        .status()
        .map_err(|e| format!("cannot run {strip}: {e} ({})", compile::STRIP_HINT))?;
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
