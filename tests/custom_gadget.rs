//! A gadget the runtime has never seen (tests/gadgets/trace_open) builds and runs: proof the
//! runtime is generic. And broken input fails with a clear message, never a panic.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;

const GADGET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/trace_open");

#[test]
fn builds_and_runs_with_params_and_fields() {
    let ig = Ig::new();
    let out = build(&ig, Path::new(GADGET), "127.0.0.1:5000/test/trace_open:v1");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("amd64"));

    let help = ig.output(&["run", "127.0.0.1:5000/test/trace_open:v1", "--help"]);
    let text = stdout_of(&help);
    assert!(
        text.contains("--only-creat") && text.contains("Only opens that create the file"),
        "{text}"
    );
    assert!(text.contains("--min-flags"), "{text}");

    let dir = tempfile::tempdir().expect("tempdir");
    let run = ig.spawn(&[
        "run",
        "127.0.0.1:5000/test/trace_open:v1",
        "--verify-image=false",
        "--host",
        "-o",
        "json",
        "--only-creat",
        "--timeout",
        "60",
    ]);
    let created = dir.path().join(marker("created"));
    let plain = dir.path().join(marker("plain"));
    fs::write(&plain, b"x").expect("write");
    let e = run
        .wait_event(
            Duration::from_secs(20),
            || {
                let _ = fs::read(&plain);
                let _ = fs::File::create(&created);
                let _ = fs::remove_file(&created);
            },
            |e| e["fname"].as_str() == created.to_str(),
        )
        .unwrap_or_else(|| {
            panic!(
                "no event for the created file; stderr: {}",
                run.stderr_text()
            )
        });
    assert_eq!(e["user"], "root");
    assert!(e["pid"].as_u64().is_some_and(|p| p > 0));
    assert!(
        e["flags"].as_i64().is_some_and(|f| f & 0o100 != 0),
        "O_CREAT in {e}"
    );
    assert!(
        !run.events()
            .iter()
            .any(|e| e["fname"].as_str() == plain.to_str()),
        "--only-creat let a plain read through"
    );
}

#[test]
fn inspect_and_list_show_the_image() {
    let ig = Ig::new();
    assert!(build(&ig, Path::new(GADGET), "trace_open:inspect")
        .status
        .success());
    let out = ig.output(&["image", "inspect", "trace_open:inspect", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["name"], "trace_open");
    let keys: Vec<&str> = doc["params"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"min-flags") && keys.contains(&"comm"),
        "{keys:?}"
    );
    assert_eq!(doc["tracers"][0]["map"], "opens");
    assert!(doc["programs"][0]["section"]
        .as_str()
        .is_some_and(|s| s.contains("sys_enter_openat")));
    let list = stdout_of(&ig.output(&["image", "list"]));
    assert!(
        list.contains("trace_open") && list.contains("inspect"),
        "{list}"
    );

    assert!(ig
        .output(&["image", "tag", "trace_open:inspect", "mine:v2"])
        .status
        .success());
    assert!(ig
        .output(&["image", "remove", "trace_open:inspect"])
        .status
        .success());
    // The blobs are still referenced by the other tag, so it still runs its inspect.
    assert!(ig.output(&["image", "inspect", "mine:v2"]).status.success());
    assert!(ig.output(&["image", "remove", "mine:v2"]).status.success());
    let blobs = fs::read_dir(ig.store.path().join("blobs/sha256"))
        .expect("blobs")
        .count();
    assert_eq!(blobs, 0, "remove left unreferenced blobs");
}

#[test]
fn missing_image_is_a_clear_error() {
    let ig = Ig::new();
    let out = ig.output(&["run", "no_such_gadget"]);
    assert_clean_failure(&out, "ghcr.io/ig-rs/gadget/no_such_gadget:latest is not in the local store and pulling it failed");
    let out = ig.output(&["run", "no_such_gadget", "--pull", "never"]);
    assert_clean_failure(&out, "is not in the local store (--pull never)");
}

#[test]
fn unknown_flag_is_a_clear_error() {
    let ig = Ig::new();
    let out = ig.output(&["run", "trace_exec", "--no-such-flag"]);
    assert_clean_failure(&out, "--no-such-flag");
    let out = ig.output(&[
        "run",
        "trace_exec",
        "--uid",
        "not-a-number",
        "--timeout",
        "1",
    ]);
    assert_clean_failure(&out, "not-a-number");
}

fn broken_copy(edit: impl Fn(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["program.bpf.c", "gadget.yaml", "build.yaml"] {
        fs::copy(Path::new(GADGET).join(f), dir.path().join(f)).expect("copy");
    }
    edit(dir.path());
    dir
}

#[test]
fn c_that_does_not_compile_is_a_clear_error() {
    let ig = Ig::new();
    let dir = broken_copy(|d| {
        let src = fs::read_to_string(d.join("program.bpf.c")).expect("read");
        fs::write(
            d.join("program.bpf.c"),
            src.replace("e->pid =", "e->no_such_field ="),
        )
        .expect("write");
    });
    let out = build(&ig, dir.path(), "broken:c");
    assert_clean_failure(&out, "no_such_field");
    assert_clean_failure(&out, "compiling");
}

#[test]
fn yaml_naming_a_missing_param_is_a_clear_error() {
    let ig = Ig::new();
    let dir = broken_copy(|d| {
        let yaml = fs::read_to_string(d.join("gadget.yaml")).expect("read");
        let yaml = yaml.replace(
            "params:\n  ebpf:\n",
            "params:\n  ebpf:\n    ghost:\n      key: ghost\n",
        );
        fs::write(d.join("gadget.yaml"), yaml).expect("write");
    });
    let out = build(&ig, dir.path(), "broken:yaml");
    assert_clean_failure(&out, "`ghost`");
}

#[test]
fn corrupted_blob_is_refused() {
    let ig = Ig::new();
    assert!(build(&ig, Path::new(GADGET), "corrupt:v1").status.success());
    // Flip a byte in the biggest blob: the BPF object.
    let blobs = ig.store.path().join("blobs/sha256");
    let biggest = fs::read_dir(&blobs)
        .expect("blobs")
        .filter_map(Result::ok)
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .expect("a blob");
    let mut bytes = fs::read(biggest.path()).expect("read blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(biggest.path(), bytes).expect("write blob");
    let out = ig.output(&[
        "run",
        "corrupt:v1",
        "--verify-image=false",
        "--host",
        "--timeout",
        "1",
    ]);
    assert_clean_failure(&out, "corrupted");
}

#[test]
fn unsigned_image_is_refused_by_default() {
    let ig = Ig::new();
    assert!(build(&ig, Path::new(GADGET), "unsigned:v1")
        .status
        .success());
    let out = ig.output(&["run", "unsigned:v1", "--host", "--timeout", "1"]);
    assert_clean_failure(&out, "unsigned:v1");
    // The built-in gadgets are the binary's own code: they run without a signature.
    let out = ig.output(&["run", "trace_exec", "--host", "--timeout", "1"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// A `char[]` parameter (Inspektor Gadget's `targ_comm` style) is a string flag: set in the
/// program before load, so only that command's opens reach the output; too long is refused.
#[test]
fn a_string_param_filters_in_bpf() {
    let ig = Ig::new();
    assert!(build(&ig, Path::new(GADGET), "trace_open:comm")
        .status
        .success());
    let help = stdout_of(&ig.output(&["run", "trace_open:comm", "--verify-image=false", "--help"]));
    assert!(help.contains("--comm <VALUE>"), "{help}");

    let dir = tempfile::tempdir().expect("tempdir");
    // A command of our own name: a copy of cat.
    let comm = format!("cat{}", std::process::id() % 100_000);
    let cat = dir.path().join(&comm);
    fs::copy("/bin/cat", &cat).expect("copy cat");
    let run = ig.spawn(&[
        "run",
        "trace_open:comm",
        "--verify-image=false",
        "--host",
        "-o",
        "json",
        "--comm",
        &comm,
        "--timeout",
        "60",
    ]);
    let ours = dir.path().join(marker("by-comm"));
    let other = dir.path().join(marker("by-other"));
    fs::write(&ours, b"x").expect("write");
    fs::write(&other, b"x").expect("write");
    let seen = run.wait_event(
        Duration::from_secs(20),
        || {
            let _ = std::process::Command::new(&cat).arg(&ours).output();
            let _ = std::process::Command::new("/bin/cat").arg(&other).output();
        },
        |e| e["fname"].as_str() == ours.to_str(),
    );
    let e = seen.unwrap_or_else(|| panic!("no open by {comm}: {}", run.stderr_text()));
    assert_eq!(e["comm"], comm.as_str(), "{e}");
    let events = run.events();
    assert!(
        events.iter().all(|e| e["comm"] == comm.as_str()),
        "another command's open got through: {events:?}"
    );

    let out = ig.output(&[
        "run",
        "trace_open:comm",
        "--verify-image=false",
        "--host",
        "--comm",
        "a-name-longer-than-15",
        "--timeout",
        "1",
    ]);
    assert_clean_failure(
        &out,
        "invalid value \"a-name-longer-than-15\" for --comm: longer than 15 bytes",
    );
}

/// `ig image build` and the built-ins share one compiler driver (src/gadget/compile.rs):
/// `IG_CLANG` names the compiler, which gets the shared command line for every architecture
/// (arm64 against the x86_64 types when it has no vmlinux.h of its own), and a compiler that
/// cannot be run is named with what to do.
#[test]
fn ig_clang_gets_the_shared_command_line_and_a_missing_one_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let ig = Ig::new();
    let out = ig
        .cmd(&["image", "build", GADGET, "-t", "noclang:v1"])
        .env("IG_CLANG", "/nonexistent/clang-19")
        .output()
        .expect("run ig");
    assert_clean_failure(&out, "/nonexistent/clang-19");
    assert_clean_failure(&out, "install clang");
    assert!(!stdout_of(&ig.output(&["image", "list"])).contains("noclang"));

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("args");
    let wrapper = dir.path().join("clang-wrapper");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexec clang \"$@\"\n",
            log.display()
        ),
    )
    .expect("write wrapper");
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = ig
        .cmd(&["image", "build", GADGET, "-t", "wrapped:v1"])
        .env("IG_CLANG", &wrapper)
        .output()
        .expect("run ig");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let calls = fs::read_to_string(&log).expect("the wrapper ran");
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "one compile per architecture: {calls:?}");
    for (call, define) in calls
        .iter()
        .zip(["-D__TARGET_ARCH_x86", "-D__TARGET_ARCH_arm64"])
    {
        assert!(
            call.starts_with("-target bpf -O2 -g -Wall -Wno-unused-function "),
            "{call}"
        );
        assert!(call.contains(define), "{call}");
        assert!(call.contains(&format!("-I {GADGET} ")), "{call}");
        assert!(call.contains("program.bpf.c -o "), "{call}");
    }
    let arm64_own = Path::new(env!("CARGO_MANIFEST_DIR")).join("vmlinux/arm64/vmlinux.h");
    assert_eq!(
        calls[1].contains("-DIG_VMLINUX_X86_64_FALLBACK"),
        !arm64_own.exists(),
        "{}",
        calls[1]
    );
}
