//! The same `ig` and built-in trace_exec on Debian's own kernels, booted under qemu by
//! `tests/vm/boot.sh`: 6.1 (Debian 12's) and 6.12 (its backports). On 6.1 the mount namespace
//! id comes from `mnt_namespace.seq` in BPF and user space has no `NS_GET_MNTNS_ID`: the
//! explicit fallback of the container identity.
//!
//! Each test prints `<kernel-release> <check> pass (accel …)`; `arm64_objects_on_debian_6_1`
//! puts the arm64 objects of our images in front of Debian's arm64 kernel (tests/vm/boot-arm64.sh).

mod common;

use std::path::Path;
use std::process::Command;

use common::{args_of, stderr_of, Ig};
use serde_json::Value;

struct Boot {
    release: String,
    accel: String,
    ig_exit: Option<i32>,
    events: Vec<Value>,
    stderr: Vec<String>,
    console: String,
}

/// Boots the newest Debian kernel of `series` with the test build of `ig` and runs
/// tests/vm/`script` in it.
fn boot(series: &str, script: &str) -> Boot {
    boot_with(series, script, &[])
}

/// [`boot`], with `files` copied into the VM's /work.
fn boot_with(series: &str, script: &str, files: &[&Path]) -> Boot {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vm");
    let out = Command::new("bash")
        .arg(format!("{dir}/boot.sh"))
        .arg(series)
        .arg(format!("{dir}/{script}"))
        .args(files)
        .env("IG_BIN", env!("CARGO_BIN_EXE_ig"))
        .output()
        .expect("run tests/vm/boot.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "boot.sh {series} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let accel = stderr
        .lines()
        .find_map(|l| l.strip_prefix("vm: kernel "))
        .and_then(|l| l.split_once(", accel "))
        .map(|(_, a)| a.to_string())
        .unwrap_or_default();
    let mut boot = Boot {
        release: String::new(),
        accel,
        ig_exit: None,
        events: Vec::new(),
        stderr: Vec::new(),
        console: format!("{stdout}\n{stderr}"),
    };
    for line in stdout.lines() {
        if let Some(r) = line.strip_prefix("release: ") {
            boot.release = r.to_string();
        } else if let Some(code) = line.strip_prefix("ig-exit: ") {
            boot.ig_exit = code.trim().parse().ok();
        } else if let Some(e) = line.strip_prefix("stderr: ") {
            boot.stderr.push(e.to_string());
        } else if let Ok(v) = serde_json::from_str::<Value>(line) {
            boot.events.push(v);
        }
    }
    boot
}

/// While alive, a failing check (a panic) prints its `<release> <check> fail (…)` line, the
/// matrix's format; a passing one prints `pass` with [`Verdict::pass`].
struct Verdict<'a> {
    boot: &'a Boot,
    check: &'a str,
}

impl<'a> Verdict<'a> {
    fn new(boot: &'a Boot, check: &'a str) -> Self {
        Verdict { boot, check }
    }

    fn pass(self) {
        println!(
            "{} {} pass (accel {})",
            self.boot.release, self.check, self.boot.accel
        );
    }
}

impl Drop for Verdict<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            println!(
                "{} {} fail (accel {}; the assertion above says why)",
                self.boot.release, self.check, self.boot.accel
            );
        }
    }
}

/// The events a script printed behind `prefix` (e.g. "uid: ").
fn events_behind(b: &Boot, prefix: &str) -> Vec<Value> {
    b.console
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn event<'a>(b: &'a Boot, args: &[&str]) -> &'a Value {
    b.events
        .iter()
        .find(|e| args_of(e) == args)
        .unwrap_or_else(|| panic!("{}: no event {args:?}:\n{}", b.release, b.console))
}

fn check_trace_exec(series: &str) {
    let b = boot(series, "trace_exec.sh");
    let verdict = Verdict::new(&b, "trace_exec");
    assert!(
        b.release.starts_with(&format!("{series}.")),
        "release {:?}:\n{}",
        b.release,
        b.console
    );
    assert_eq!(b.ig_exit, Some(0), "{}", b.console);

    let ok = event(&b, &["/bin/echo", "vm-marker", "a", "b"]);
    assert_eq!(ok["comm"], "echo", "{ok}");
    assert_eq!(ok["error"], "", "{ok}");
    assert_eq!(ok["args_count"], 4, "{ok}");
    assert_eq!(ok["user"], "root", "{ok}");
    assert_eq!(ok["file"], "/bin/echo", "{ok}");
    assert_eq!(ok["exepath"], "/bin/busybox", "{ok}");
    assert_eq!(ok["cwd"], "/work", "{ok}");

    // Lineage (--parent --exits): ids, the parent from the cache, an exit with its code.
    assert!(
        ok["exec_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{ok}"
    );
    assert!(ok["parent"]["pid"].as_u64().is_some_and(|p| p > 0), "{ok}");
    let exits = event(&b, &["sh", "-c", "exit 5", "vm-exit"]);
    let exit = b
        .events
        .iter()
        .find(|e| e["exit_code"] == 5 && e["exec_id"] == exits["exec_id"])
        .unwrap_or_else(|| panic!("{}: no exit with code 5:\n{}", b.release, b.console));
    assert_eq!(exit["signal"], "", "{exit}");

    let failed = event(&b, &["/nonexistent/vm-failed", "x"]);
    assert_eq!(failed["error"], "ENOENT", "{failed}");
    assert_eq!(failed["file"], "/nonexistent/vm-failed", "{failed}");
    assert_eq!(
        failed["exepath"], "",
        "a failed exec has no exepath: {failed}"
    );
    assert_eq!(failed["upper_layer"], false, "{failed}");

    // The namespace id, from BPF (mnt_namespace.seq before 6.18): never 0, and another one for
    // a namespace of its own.
    let unshared = event(&b, &["/bin/echo", "vm-unshared"]);
    let nsid = |e: &Value| e["mntns_nsid"].as_u64().unwrap_or(0);
    assert_ne!(nsid(ok), 0, "{ok}");
    assert_eq!(nsid(ok), nsid(failed), "{failed}");
    assert_ne!(nsid(unshared), 0, "{unshared}");
    assert_ne!(nsid(unshared), nsid(ok), "{unshared}");
    assert_ne!(unshared["mntns_id"], ok["mntns_id"], "{unshared}");
    // No runtime in the VM: every namespace is decided at once, none is held and then guessed.
    assert!(
        !b.stderr
            .iter()
            .any(|l| l.contains("no container runtime claimed")),
        "{:?}",
        b.stderr
    );

    // --paths on a script: the file is the script, the executable its interpreter.
    // (The arguments are the ones the kernel runs: the interpreter's.)
    let script = event(&b, &["/bin/sh", "/tmp/vm-script.sh", "vm-script-arg"]);
    assert_eq!(script["comm"], "vm-script.sh", "{script}");
    assert_eq!(script["file"], "/tmp/vm-script.sh", "{script}");
    assert_eq!(script["exepath"], "/bin/busybox", "{script}");

    // upper_layer: a binary copied into the merged overlay lives on its upper layer.
    let lower = event(&b, &["/tmp/ov/merged/bb-lower", "echo", "vm-lower"]);
    let upper = event(&b, &["/tmp/ov/merged/bb-upper", "echo", "vm-upper"]);
    assert_eq!(lower["upper_layer"], false, "{lower}");
    assert_eq!(upper["upper_layer"], true, "{upper}");

    // --uid 1234: that uid's exec, named from the VM's /etc/passwd, and nothing of root's.
    let all = event(&b, &["/bin/echo", "vm-uid-marker"]);
    assert_eq!(all["uid"], 1234, "{all}");
    assert_eq!(all["user"], "vmuser", "{all}");
    assert!(b.console.contains("ig-uid-exit: 0"), "{}", b.console);
    let only = events_behind(&b, "uid: ");
    assert!(
        only.iter()
            .any(|e| args_of(e) == ["/bin/echo", "vm-uid-marker"] && e["uid"] == 1234),
        "--uid 1234 missed its exec:\n{}",
        b.console
    );
    assert!(
        only.iter().all(|e| e["uid"] == 1234),
        "--uid 1234 let other uids through:\n{}",
        b.console
    );
    verdict.pass();
}

/// traceloop loads and records on the kernel: a write in the host's namespace (kept although
/// ig's own syscalls go on for seconds after it) and one in a namespace of its own, decoded.
fn check_traceloop(series: &str) {
    let b = boot(series, "traceloop.sh");
    let verdict = Verdict::new(&b, "traceloop");
    assert!(
        b.release.starts_with(&format!("{series}.")),
        "{}",
        b.console
    );
    assert_eq!(b.ig_exit, Some(0), "{}", b.console);
    let buf_of = |e: &Value| {
        e["params"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "buf"))
            .and_then(|p| p["value"].as_str().map(str::to_string))
    };
    let write = |text: &str| {
        b.events
            .iter()
            .find(|e| e["syscall"] == "write" && buf_of(e).as_deref() == Some(text))
            .unwrap_or_else(|| panic!("{}: no write of {text:?}:\n{}", b.release, b.console))
    };
    let host = write("vm-host-write\n");
    let unshared = write("vm-unshared-write\n");
    assert_eq!(host["ret"], 14, "{host}");
    assert_eq!(unshared["ret"], 18, "{unshared}");
    assert_eq!(unshared["comm"], "sh", "{unshared}");
    assert_ne!(host["mntns_id"], unshared["mntns_id"], "{host}\n{unshared}");
    verdict.pass();
}

/// The test gadgets, built here once and run from the same archive in the VM: a tracepoint
/// (trace_open), a kprobe and an fentry program. Debian's kernels have kprobes and BPF
/// trampolines, so each must attach and see the marker's open (on this machine's kernel the
/// last two fail with a clear error: tests/gadget_messages.rs).
fn check_gadgets(series: &str) {
    let ig = Ig::new();
    let gadgets = ["trace_open", "kprobe_open", "fentry_open"];
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets");
    for g in gadgets.iter().chain(&["core_missing"]) {
        let out = ig.output(&[
            "image",
            "build",
            &format!("{src}/{g}"),
            "-t",
            &format!("vm/{g}:v1"),
        ]);
        assert!(out.status.success(), "{g}: {}", stderr_of(&out));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("gadgets.tar");
    let mut args: Vec<String> = gadgets
        .iter()
        .chain(&["core_missing"])
        .map(|g| format!("vm/{g}:v1"))
        .collect();
    args.insert(0, "export".into());
    args.insert(0, "image".into());
    args.push(archive.to_string_lossy().into_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ig.output(&args);
    assert!(out.status.success(), "{}", stderr_of(&out));

    let b = boot_with(series, "gadgets.sh", &[archive.as_path()]);
    assert!(
        b.release.starts_with(&format!("{series}.")),
        "{}",
        b.console
    );
    for g in gadgets {
        let check = match g {
            "trace_open" => "trace_open",
            "kprobe_open" => "kprobe",
            _ => "fentry",
        };
        let verdict = Verdict::new(&b, check);
        let exit = format!("ig-exit {g}: 0");
        assert!(
            b.console.contains(&exit),
            "{}: {g} did not exit 0:\n{}",
            b.release,
            b.console
        );
        let prefix = format!("{g}: ");
        let marker = format!("/tmp/vm-marker-{g}");
        let event: Value = b
            .console
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["fname"] == marker.as_str())
            .unwrap_or_else(|| {
                panic!("{}: {g} saw no open of {marker}:\n{}", b.release, b.console)
            });
        assert_eq!(event["comm"], "cat", "{event}");
        assert!(event["pid"].as_u64().is_some_and(|p| p > 1), "{event}");
        verdict.pass();
    }

    // Probing, not guessing: what the kernel lacks is named, with the kernel.
    let verdict = Verdict::new(&b, "probe-core");
    let err = |what: &str| -> String {
        let prefix = format!("stderr {what}: ");
        b.console
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        b.console.contains("ig-exit core_missing: 1"),
        "{}",
        b.console
    );
    let want = format!(
        "it needs `struct task_struct.ig_no_such_field` (a CO-RE relocation), which this kernel ({}) does not have",
        b.release
    );
    assert!(err("core_missing").contains(&want), "{}", b.console);
    verdict.pass();
    let verdict = Verdict::new(&b, "probe-btf");
    assert!(b.console.contains("ig-exit nobtf: 1"), "{}", b.console);
    let want = format!(
        "this kernel ({}) has no BTF (/sys/kernel/btf/vmlinux is missing)",
        b.release
    );
    assert!(err("nobtf").contains(&want), "{}", b.console);
    verdict.pass();
}

#[test]
fn gadgets_on_debian_6_1() {
    check_gadgets("6.1");
}

#[test]
fn gadgets_on_debian_6_12() {
    check_gadgets("6.12");
}

#[test]
fn trace_exec_on_debian_6_1() {
    check_trace_exec("6.1");
}

#[test]
fn trace_exec_on_debian_6_12() {
    check_trace_exec("6.12");
}

#[test]
fn traceloop_on_debian_6_1() {
    check_traceloop("6.1");
}

#[test]
fn traceloop_on_debian_6_12() {
    check_traceloop("6.12");
}

/// This machine's own kernel in the matrix: the built-in and test gadgets run directly (no VM);
/// a hook kind the kernel lacks is `unsupported`, with the loader's message as the reason — and
/// that message must be the clear one (tests/gadget_messages.rs checks its exact text).
#[test]
fn gadgets_on_this_kernel() {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let release = release.trim();
    let ig = Ig::new();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets");
    let marker = common::marker("host-matrix");
    for (check, image) in [
        ("trace_exec", "trace_exec".to_string()),
        ("trace_open", format!("{src}/trace_open")),
        ("kprobe", format!("{src}/kprobe_open")),
        ("fentry", format!("{src}/fentry_open")),
    ] {
        let image = if image.starts_with('/') {
            let tag = format!("host/{check}:v1");
            let out = ig.output(&["image", "build", &image, "-t", &tag]);
            assert!(out.status.success(), "{check}: {}", stderr_of(&out));
            tag
        } else {
            image
        };
        let run = ig.spawn(&[
            "run",
            &image,
            "--verify-image=false",
            "--host",
            "-o",
            "json",
            "--timeout",
            "30",
        ]);
        let path = format!("/tmp/{marker}-{check}");
        let seen = run.wait_event(
            std::time::Duration::from_secs(20),
            || {
                let _ = std::fs::read(&path);
                common::exec("/bin/true", &[&path]);
            },
            |e| e["fname"] == path.as_str() || args_of(e).contains(&path),
        );
        let (_, _, err) = run.stop();
        let lacks = err.contains("not available on this kernel");
        match (seen, lacks) {
            (Some(_), _) => println!("{release} {check} pass (this machine)"),
            (None, true) if matches!(check, "kprobe" | "fentry") => {
                let reason = err
                    .lines()
                    .find(|l| l.contains("not available on this kernel"))
                    .unwrap_or_default()
                    .trim_start_matches("ig: error: ");
                println!("{release} {check} unsupported ({reason})");
            }
            (None, _) => {
                println!("{release} {check} fail (no event; stderr: {err})");
                panic!("{check} on {release}: no event:\n{err}");
            }
        }
    }
}

/// The arm64 objects of our images in front of an arm64 kernel's verifier: Debian 12's arm64
/// kernel under qemu-system-aarch64 (TCG), Debian's arm64 `bpftool` loading each object
/// (tests/vm/boot-arm64.sh, tests/vm/arm64-objects.sh). The objects are taken from the images
/// the way `ig run` on an arm64 machine takes them (the index's linux/arm64 manifest): the
/// built-in trace_exec and traceloop, and the test gadgets built here. Every program of each
/// object must load; `core_missing`, whose relocation no kernel resolves, must be refused by
/// that verifier, so a pass is the verifier's and not a harness that loads nothing.
#[test]
fn arm64_objects_on_debian_6_1() {
    use object::{Object, ObjectSection, ObjectSymbol};

    let ig = Ig::new();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets");
    let mut images = vec![
        ("trace_exec", "trace_exec".to_string()),
        ("traceloop", "traceloop".to_string()),
    ];
    for g in [
        "trace_open",
        "record_files",
        "kprobe_open",
        "fentry_open",
        "core_missing",
    ] {
        let tag = format!("arm64/{g}:v1");
        let out = ig.output(&["image", "build", &format!("{src}/{g}"), "-t", &tag]);
        assert!(out.status.success(), "{g}: {}", stderr_of(&out));
        images.push((g, tag));
    }
    for builtin in ["trace_exec", "traceloop"] {
        // Seeds the store from the binary.
        let out = ig.output(&["image", "inspect", builtin]);
        assert!(out.status.success(), "{builtin}: {}", stderr_of(&out));
    }
    let store = ig::oci::Store::open(ig.store.path()).expect("store");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut objects = Vec::new();
    let mut programs = std::collections::BTreeMap::new();
    for (name, image) in &images {
        let reference = ig::oci::Reference::parse(image).expect("reference");
        let gadget = ig::oci::image::read_gadget(&store, &reference, "arm64")
            .unwrap_or_else(|e| panic!("{image} has no arm64 object: {e}"));
        let elf = object::File::parse(gadget.object.as_slice()).expect("an ELF object");
        // A program: a global function in a section of its own (not .text's subprograms).
        let count = elf
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.is_global())
            .filter(|s| {
                s.section_index()
                    .and_then(|i| elf.section_by_index(i).ok())
                    .and_then(|sec| sec.name().ok().map(|n| n != ".text"))
                    .unwrap_or(false)
            })
            .count();
        assert!(count > 0, "{image}: no programs in its arm64 object");
        programs.insert(name.to_string(), count);
        let path = dir.path().join(format!("{name}.o"));
        std::fs::write(&path, &gadget.object).expect("write object");
        objects.push(path);
    }

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vm/arm64-objects.sh");
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vm/boot-arm64.sh"
        ))
        .arg("6.1")
        .arg(script)
        .args(&objects)
        .output()
        .expect("run tests/vm/boot-arm64.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "boot-arm64.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let release = stdout
        .lines()
        .find_map(|l| l.strip_prefix("release: "))
        .unwrap_or_default()
        .to_string();
    let accel = stderr
        .lines()
        .find_map(|l| l.strip_prefix("vm: kernel "))
        .and_then(|l| l.split_once(", accel "))
        .map(|(_, a)| a.to_string())
        .unwrap_or_default();
    let b = Boot {
        release,
        accel,
        ig_exit: None,
        events: Vec::new(),
        stderr: Vec::new(),
        console: format!("{stdout}\n{stderr}"),
    };
    let verdict = Verdict::new(&b, "arm64-objects");
    assert!(
        b.release.starts_with("6.1.") && b.release.ends_with("-arm64"),
        "release {:?}:\n{}",
        b.release,
        b.console
    );
    assert!(b.console.contains("machine: aarch64"), "{}", b.console);
    let log_of = |name: &str| {
        let prefix = format!("log {name}: ");
        b.console
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (name, count) in &programs {
        let line = b
            .console
            .lines()
            .find_map(|l| l.strip_prefix(&format!("object {name}: ")))
            .unwrap_or_else(|| panic!("{}: {name} was not loaded:\n{}", b.release, b.console));
        if name == "core_missing" {
            assert_eq!(line, "fail", "{}", b.console);
            let log = log_of(name);
            assert!(
                log.contains("failed to resolve CO-RE relocation")
                    && log.contains("ig_no_such_field"),
                "{}: core_missing was refused, but not for its relocation:\n{log}",
                b.release
            );
        } else {
            assert_eq!(
                line,
                format!("pass ({count} programs)"),
                "{}: the arm64 object of {name} did not load:\n{}",
                b.release,
                log_of(name)
            );
        }
    }
    println!(
        "arm64 objects verified: {}",
        programs
            .iter()
            .filter(|(name, _)| name.as_str() != "core_missing")
            .map(|(name, n)| format!("{name} ({n} programs)"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    verdict.pass();
}
