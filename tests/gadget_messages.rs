//! What a broken or hostile gadget earns: a clear error naming what is wrong, at build where
//! it can be known there, and at load for an image that was never built by `ig` — never a
//! panic, a flag of ig's taken over, or a blame on the wrong file.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use ig::oci::image::{read_gadget, write_image, ImageParts};
use ig::oci::{Reference, Store};

const GADGET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/trace_open");
const FENTRY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/fentry_open");
const KPROBE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/kprobe_open");

/// An image made without `ig image build`: trace_open's object with its gadget.yaml edited,
/// written straight into the store as `tag` (with `description` as its annotation).
fn rebuilt_with(ig: &Ig, tag: &str, description: &str, edit: impl Fn(&str) -> String) {
    assert!(build(ig, Path::new(GADGET), "good:v1").status.success());
    let store = Store::open(ig.store.path()).expect("store");
    let good = read_gadget(&store, &Reference::parse("good:v1").expect("ref"), "amd64")
        .expect("read image");
    let yaml = edit(std::str::from_utf8(&good.metadata_yaml).expect("utf8"));
    let parts = ImageParts {
        metadata_yaml: yaml.as_bytes(),
        name: "trace_open",
        description,
        url: "",
        documentation: "",
        source: "",
        created: "2026-01-01T00:00:00Z".into(),
        objects: vec![("amd64", good.object.as_slice())],
        extra_annotations: Vec::new(),
    };
    write_image(&store, &Reference::parse(tag).expect("ref"), &parts).expect("write");
}

/// trace_open with `edit` applied to (program.bpf.c, gadget.yaml, build.yaml).
fn edited(edit: impl Fn(&mut String, &mut String, &mut String)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let read = |f: &str| fs::read_to_string(Path::new(GADGET).join(f)).expect("read");
    let (mut c, mut yaml, mut build) = (
        read("program.bpf.c"),
        read("gadget.yaml"),
        read("build.yaml"),
    );
    edit(&mut c, &mut yaml, &mut build);
    fs::write(dir.path().join("program.bpf.c"), c).expect("write");
    fs::write(dir.path().join("gadget.yaml"), yaml).expect("write");
    fs::write(dir.path().join("build.yaml"), build).expect("write");
    dir
}

fn with_min_flags_key(key: &str) -> tempfile::TempDir {
    let key = key.to_string();
    edited(move |_, yaml, _| *yaml = yaml.replace("key: min-flags", &format!("key: {key}")))
}

#[test]
fn a_param_named_like_an_ig_flag_is_refused_at_build() {
    let ig = Ig::new();
    for key in [
        "timeout",
        "max-events",
        "host",
        "output",
        "fields",
        "docker-socketpath",
    ] {
        let out = build(&ig, with_min_flags_key(key).path(), "clash:v1");
        assert_clean_failure(
            &out,
            &format!("parameter key \"{key}\": `--{key}` is a flag of ig itself"),
        );
    }
    let out = build(&ig, with_min_flags_key("only-creat").path(), "clash:v1");
    assert_clean_failure(
        &out,
        "parameter key \"only-creat\": two parameters have this key",
    );
    let out = build(&ig, with_min_flags_key("\"a b\"").path(), "clash:v1");
    assert_clean_failure(
        &out,
        "parameter key \"a b\": a parameter key is 1 to 64 letters",
    );
}

/// An image made without `ig image build` (here: a good object with a hostile gadget.yaml
/// written straight into the store) is refused when it is loaded, naming the parameter.
#[test]
fn a_param_named_like_an_ig_flag_is_refused_at_load() {
    let ig = Ig::new();
    rebuilt_with(&ig, "hostile:v1", "", |yaml| {
        yaml.replace("key: min-flags", "key: timeout")
    });
    for args in [
        &[
            "run",
            "hostile:v1",
            "--verify-image=false",
            "--timeout",
            "1",
        ][..],
        &["run", "hostile:v1", "--verify-image=false", "--help"][..],
        &["image", "inspect", "hostile:v1"][..],
    ] {
        let out = ig.output(args);
        assert_clean_failure(
            &out,
            "parameter key \"timeout\": `--timeout` is a flag of ig itself",
        );
    }
}

#[test]
fn a_bad_default_value_is_refused_at_build_naming_the_parameter() {
    let ig = Ig::new();
    let dir =
        edited(|_, yaml, _| *yaml = yaml.replace("defaultValue: \"false\"", "defaultValue: maybe"));
    let out = build(&ig, dir.path(), "default:v1");
    assert_clean_failure(
        &out,
        "gadget.yaml: defaultValue \"maybe\" of parameter `only-creat` is not valid",
    );
}

#[test]
fn a_tracer_struct_larger_than_its_ring_is_refused_at_build() {
    let ig = Ig::new();
    let dir = edited(|c, _, _| {
        *c = c
            .replace(
                "GADGET_TRACER_MAP(opens, 256 * 1024)",
                "GADGET_TRACER_MAP(opens, 4096)",
            )
            .replace("char fname[128];", "char fname[4096];")
            .replace("sizeof(e->fname)", "128");
    });
    let out = build(&ig, dir.path(), "ring:v1");
    assert_clean_failure(&out, "does not fit in ring buffer `opens` (4096 bytes)");
    assert_clean_failure(&out, "tracer `open`: struct `open_event` (4");
}

#[test]
fn build_file_and_program_errors_blame_their_own_file() {
    let ig = Ig::new();
    let dir = edited(|_, _, b| *b = "ebpfsource: [not, a, string]\n".into());
    let out = build(&ig, dir.path(), "blame:v1");
    assert_clean_failure(&out, "invalid build.yaml:");
    assert!(
        !stderr_of(&out).contains("gadget.yaml"),
        "{}",
        stderr_of(&out)
    );

    let dir = edited(|_, _, b| *b = "ebpfsource: program.go\n".into());
    fs::write(dir.path().join("program.go"), "package main\n").expect("write");
    let out = build(&ig, dir.path(), "blame:v1");
    assert_clean_failure(
        &out,
        "invalid build.yaml: ebpfsource `program.go` is not a C file",
    );
    assert!(!stderr_of(&out).contains("strip"), "{}", stderr_of(&out));

    // A parameter that is not `const volatile` is the program's fault, not gadget.yaml's.
    let dir = edited(|c, _, _| {
        *c = c.replace(
            "const volatile __u32 min_flags = 0;",
            "volatile __u32 min_flags = 0;",
        )
    });
    let out = build(&ig, dir.path(), "blame:v1");
    assert_clean_failure(
        &out,
        "the BPF program: parameter `min_flags` must be a `const volatile` global",
    );

    let dir = edited(|c, _, _| c.clear());
    let out = build(&ig, dir.path(), "blame:v1");
    assert_clean_failure(&out, "the object holds no BPF program");
    assert!(
        !stderr_of(&out).contains("compile with -g"),
        "{}",
        stderr_of(&out)
    );
}

/// On this kernel (no BPF trampolines, no kprobes) the loader says which program and which
/// hook kind, not libbpf's "try raising ulimit -l".
#[test]
fn fentry_and_kprobe_programs_fail_naming_the_hook_this_kernel_lacks() {
    let ig = Ig::new();
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let release = release.trim();
    let probe = |dir: &str, tag: &str| -> Option<std::process::Output> {
        assert!(build(&ig, Path::new(dir), tag).status.success());
        let out = ig.output(&[
            "run",
            tag,
            "--verify-image=false",
            "--host",
            "--timeout",
            "1",
        ]);
        (!out.status.success()).then_some(out)
    };
    // Where the hook works (another kernel, e.g. in the VM tests), the run succeeds; here it
    // must not, and the message is the point of this test.
    let out = probe(FENTRY, "fentry:v1").expect("fentry ran on a kernel that lacks it");
    assert_clean_failure(
        &out,
        &format!(
            "the kernel refused program `fentry_openat2` (fentry/do_sys_openat2): -EPERM: \
             fentry/fexit/LSM programs (BPF trampolines) are not available on this kernel ({release})"
        ),
    );
    assert!(!stderr_of(&out).contains("ulimit"), "{}", stderr_of(&out));
    let out = probe(KPROBE, "kprobe:v1").expect("kprobe ran on a kernel that lacks it");
    assert_clean_failure(
        &out,
        &format!(
            "attaching program `kprobe_openat2` (kprobe/do_sys_openat2) failed: failed to \
             attach BPF program: kprobes are not available on this kernel ({release})"
        ),
    );
}

#[test]
fn limits_take_no_negative_values_and_zero_means_none() {
    let ig = Ig::new();
    for flag in ["--timeout", "--max-events"] {
        let out = ig.output(&["run", "trace_exec", "--host", flag, "-5"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
        let err = stderr_of(&out);
        assert!(err.contains("invalid value '-5'"), "{err}");
        assert!(err.contains("0 or more (0: no limit)"), "{err}");
        assert!(!err.contains("-- -5"), "{err}");
    }

    // --timeout 0: no timeout; the run ends at its first event (one uid only: the tests
    // run in parallel).
    let name = marker("zero");
    let mut run = ig.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "0",
        "--max-events",
        "1",
        "--uid",
        "54321",
    ]);
    let seen = run.wait_event(
        Duration::from_secs(20),
        || {
            exec(
                "setpriv",
                &[
                    "--reuid=54321",
                    "--regid=54321",
                    "--clear-groups",
                    "/bin/true",
                    &name,
                ],
            )
        },
        |e| args_of(e).contains(&name),
    );
    assert!(seen.is_some(), "no event: {}", run.stderr_text());
    assert!(
        exited_within(&mut run, Duration::from_secs(10)),
        "still running after its event"
    );
    let (status, lines, err) = run.stop();
    assert!(status.success(), "{err}");
    assert_eq!(lines.len(), 1, "{lines:?}");

    // --max-events 0: no limit; the run ends at its timeout with every event.
    let started = Instant::now();
    let name = marker("nolimit");
    let mut run = ig.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--max-events",
        "0",
        "--timeout",
        "3",
    ]);
    let seen = run.wait_event(
        Duration::from_secs(20),
        || {
            exec("/bin/true", &[&name]);
            exec("/bin/true", &[&name]);
        },
        |e| args_of(e).contains(&name),
    );
    assert!(seen.is_some(), "no event: {}", run.stderr_text());
    assert!(
        exited_within(&mut run, Duration::from_secs(20)),
        "--timeout 3 did not stop it"
    );
    assert!(started.elapsed() >= Duration::from_secs(3));
    let (status, lines, err) = run.stop();
    assert!(status.success(), "{err}");
    assert!(lines.len() >= 2, "{lines:?}");
}

fn exited_within(run: &mut Running, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !run.child_alive() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn help_exits_zero_with_or_without_an_image() {
    let ig = Ig::new();
    for args in [&["run", "--help"][..], &["run", "trace_exec", "--help"][..]] {
        let out = ig.output(args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        assert!(stdout_of(&out).contains("Usage"), "{}", stdout_of(&out));
        assert!(!stderr_of(&out).contains("error"), "{}", stderr_of(&out));
    }
}

/// One escaping rule for everything that comes from outside: an image's own text in `ig image
/// inspect` (text and JSON), and what the kernel reports in every output mode.
#[test]
fn image_and_kernel_text_never_reaches_the_terminal_raw() {
    let ig = Ig::new();
    let hostile = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}gpj.exe\u{85}";
    // A JSON string is a YAML double-quoted scalar: \u001b etc. carry the bytes in.
    let quoted = ig::output::json_string(hostile, false).expect("json");
    rebuilt_with(&ig, "shout:v1", hostile, |yaml| {
        yaml.replace(
            "description: Trace openat calls (a test gadget)",
            &format!("description: {quoted}"),
        )
        .replace(
            "description: Only opens that create the file",
            &format!("description: {quoted}"),
        )
    });
    let raw = |s: &str| s.chars().any(|c| ig::output::is_unsafe(c) && c != '\n');
    let text = ig.output(&["image", "inspect", "shout:v1"]);
    assert!(text.status.success(), "{}", stderr_of(&text));
    let out = stdout_of(&text);
    assert!(!raw(&out), "{out:?}");
    assert!(
        out.contains("evil\\x1b]0;pwned\\x07\\x1b[2J\\u202egpj.exe\\x85"),
        "{out}"
    );
    let json = ig.output(&["image", "inspect", "shout:v1", "-o", "json"]);
    let out = stdout_of(&json);
    assert!(!raw(&out), "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["description"], hostile);

    // The kernel's side: an argument with the same bytes, in columns, json and yaml.
    for mode in ["columns", "json", "yaml"] {
        let name = marker("shout");
        let arg = format!("\u{202e}{name}{hostile}");
        let run = ig.spawn(&["run", "trace_exec", "--host", "-o", mode, "--timeout", "30"]);
        let seen = || run.lines().iter().any(|l| l.contains(&name));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen() && Instant::now() < deadline {
            exec("/bin/true", &[&arg]);
            std::thread::sleep(Duration::from_millis(100));
        }
        let (_, lines, err) = run.stop();
        let ours: Vec<&String> = lines.iter().filter(|l| l.contains(&name)).collect();
        assert!(!ours.is_empty(), "{mode}: no event; {err}");
        for l in ours {
            assert!(!raw(l), "{mode}: {l:?}");
            assert!(l.contains("\\u202e"), "{mode}: {l}");
        }
    }
}

/// A CO-RE relocation this kernel's BTF cannot resolve is named: the type and field (without
/// the program's local `___flavor`), the program and the kernel.
#[test]
fn a_kernel_field_the_program_needs_and_the_kernel_lacks_is_named() {
    let ig = Ig::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/core_missing");
    assert!(build(&ig, Path::new(dir), "core:v1").status.success());
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let out = ig.output(&[
        "run",
        "core:v1",
        "--verify-image=false",
        "--host",
        "--timeout",
        "1",
    ]);
    assert_clean_failure(
        &out,
        &format!(
            "the kernel refused program `core_missing_openat` (tracepoint/syscalls/sys_enter_openat): \
             -EINVAL: it needs `struct task_struct.ig_no_such_field` (a CO-RE relocation), which \
             this kernel ({}) does not have",
            release.trim()
        ),
    );
}

/// Without the capabilities, the refusal is named as theirs, not as a missing hook or libbpf's
/// "try raising ulimit -l".
#[test]
fn a_load_refused_for_lack_of_capabilities_says_which() {
    let ig = Ig::new();
    let out = std::process::Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all,+bpf,+sys_ptrace,+dac_read_search",
        ])
        .arg(ig_bin())
        .args(["run", "trace_exec", "--host", "--timeout", "1"])
        .env("IG_STORE", ig.store.path())
        .output()
        .expect("setpriv");
    assert_clean_failure(
        &out,
        "-EPERM: ig lacks CAP_PERFMON: loading tracing programs needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN",
    );
    assert!(!stderr_of(&out).contains("ulimit"), "{}", stderr_of(&out));
}
