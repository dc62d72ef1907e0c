//! trace_exec on the real kernel: what a user checks in the events.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(20);

/// Starts trace_exec and returns once a warm-up exec shows up (the tracer is attached).
fn start(ig: &Ig, extra: &[&str]) -> Running {
    let mut args = vec![
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "60",
    ];
    args.extend_from_slice(extra);
    let run = ig.spawn(&args);
    run.wait_attached(WAIT);
    run
}

fn find(run: &Running, needle: &str) -> Option<serde_json::Value> {
    run.wait_event(WAIT, || {}, |e| args_of(e).iter().any(|a| a == needle))
}

#[test]
fn true_with_args_as_json() {
    let ig = Ig::new();
    let run = start(&ig, &[]);
    let m = marker("args");
    exec("/bin/true", &["x", "y", &m]);
    let e = find(&run, &m).expect("event for /bin/true");
    assert_eq!(args_of(&e), vec!["/bin/true", "x", "y", m.as_str()]);
    assert_eq!(e["comm"], "true");
    assert_eq!(e["user"], "root");
    assert_eq!(e["uid"], 0);
    assert_eq!(e["group"], "root");
    assert_eq!(e["error"], "");
    assert_eq!(e["args_truncated"], false);
    assert_eq!(
        e["ppid"].as_u64(),
        Some(std::process::id() as u64),
        "parent is this test"
    );
    assert!(e["pcomm"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(e["pid"].as_u64().is_some_and(|p| p > 0));
    assert_eq!(e["pid"], e["tid"]);
    assert!(e["timestamp"]
        .as_str()
        .is_some_and(|t| t.starts_with("20") && t.ends_with('Z')));
    let (status, _, stderr) = run.stop();
    assert!(status.success(), "ig exited with {status}: {stderr}");
}

#[test]
fn failed_exec_is_reported_only_when_asked() {
    let ig = Ig::new();
    let missing = format!("/nonexistent/{}", marker("missing"));
    let sentinel = marker("sentinel");

    let run = start(&ig, &["--ignore-failed=false"]);
    // Two in a row: the second must not carry anything of the first.
    exec(&missing, &["first", "call"]);
    exec(&missing, &["2nd"]);
    let e = run
        .wait_event(
            WAIT,
            || {},
            |e| args_of(e).first() == Some(&missing) && args_of(e).len() == 2,
        )
        .expect("failed exec reported");
    assert_eq!(e["error"], "ENOENT");
    assert_eq!(e["error_raw"], 2);
    assert_eq!(args_of(&e), [missing.as_str(), "2nd"]);
    assert_eq!(e["args_count"], 2);
    assert_eq!(e["args_size"].as_u64(), Some(missing.len() as u64 + 1 + 4));
    assert_eq!(e["args_truncated"], false);
    drop(run);

    let run = start(&ig, &[]);
    exec(&missing, &[]);
    exec("/bin/true", &[&sentinel]);
    find(&run, &sentinel).expect("sentinel");
    assert!(
        !run.events()
            .iter()
            .any(|e| args_of(e).first() == Some(&missing)),
        "failed exec shown although --ignore-failed defaults to true"
    );
}

#[test]
fn uid_filter() {
    let ig = Ig::new();
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "60",
        "--uid",
        "12345",
    ]);
    let as_root = marker("root");
    let as_user = marker("user");
    // The tracer is ready once a uid-12345 warm-up shows.
    let warm = marker("warm12345");
    let setpriv = |m: &str| {
        exec(
            "setpriv",
            &[
                "--reuid",
                "12345",
                "--regid",
                "12345",
                "--clear-groups",
                "/bin/true",
                m,
            ],
        )
    };
    run.wait_event(WAIT, || setpriv(&warm), |e| args_of(e).contains(&warm))
        .unwrap_or_else(|| panic!("tracer never attached: {}", run.stderr_text()));
    exec("/bin/true", &[&as_root]);
    setpriv(&as_user);
    let e = find(&run, &as_user).expect("uid 12345 event");
    assert_eq!(e["uid"], 12345);
    assert_eq!(e["user"], "uid:12345");
    assert!(
        !run.events().iter().any(|e| args_of(e).contains(&as_root)),
        "root's exec shown with --uid 12345"
    );
}

#[test]
fn paths_for_binary_symlink_and_script() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "busybox-static must be installed (tests/setup/deps.sh)"
    );
    symlink(busybox, dir.path().join("id")).expect("symlink");
    let script = dir.path().join("script.sh");
    fs::write(&script, "#!/bin/sh\nexit 0\n").expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");

    let run = start(&ig, &["--paths"]);
    let m = marker("paths");
    let status = Command::new("/bin/true")
        .arg(&m)
        .current_dir(dir.path())
        .status()
        .expect("true");
    assert!(status.success());
    let e = find(&run, &m).expect("binary event");
    assert_eq!(
        e["cwd"].as_str(),
        dir.path()
            .canonicalize()
            .ok()
            .and_then(|p| p.to_str().map(String::from))
            .as_deref()
    );
    assert_eq!(e["file"], "/bin/true");
    assert_eq!(
        e["exepath"].as_str(),
        fs::canonicalize("/bin/true")
            .ok()
            .and_then(|p| p.to_str().map(String::from))
            .as_deref()
    );

    let id = dir.path().join("id");
    let m = marker("symlink");
    let _ = Command::new(&id).arg(&m).output();
    let e = find(&run, &m).expect("symlink event");
    assert_eq!(e["file"].as_str(), id.to_str());
    assert_eq!(
        e["exepath"].as_str(),
        fs::canonicalize(busybox)
            .ok()
            .and_then(|p| p.to_str().map(String::from))
            .as_deref()
    );
    assert_eq!(e["comm"], "id");

    let m = marker("script");
    let _ = Command::new(&script).arg(&m).output();
    let e = find(&run, &m).expect("script event");
    assert_eq!(e["file"].as_str(), script.to_str());
    assert_eq!(
        e["exepath"].as_str(),
        fs::canonicalize("/bin/sh")
            .ok()
            .and_then(|p| p.to_str().map(String::from))
            .as_deref()
    );
}

#[test]
fn upper_layer_of_overlay() {
    let ig = Ig::new();
    let base = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| base.path().join(n);
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir(p(d)).expect("mkdir");
    }
    fs::copy("/bin/true", p("lower/lowtrue")).expect("copy lower");
    fs::copy("/bin/true", p("upper/uptrue")).expect("copy upper");
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        p("lower").display(),
        p("upper").display(),
        p("work").display()
    );
    let ok = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(p("merged"))
        .status()
        .expect("mount");
    assert!(ok.success(), "mount overlay");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(p("merged"));

    let run = start(&ig, &[]);
    let (ml, mu) = (marker("lower"), marker("upper"));
    exec(p("merged/lowtrue").to_str().expect("utf8"), &[&ml]);
    exec(p("merged/uptrue").to_str().expect("utf8"), &[&mu]);
    let lower = find(&run, &ml).expect("lower event");
    let upper = find(&run, &mu).expect("upper event");
    assert_eq!(lower["upper_layer"], false);
    assert_eq!(upper["upper_layer"], true);
}

#[test]
fn fexecve_thread_exec_and_long_args() {
    let ig = Ig::new();
    let run = start(&ig, &[]);
    let (mf, mt, ml) = (marker("fexecve"), marker("thread"), marker("long"));
    let py = format!(
        r#"
import os, sys, threading
kind = sys.argv[1]
if kind == "fexecve":
    fd = os.open("/bin/true", os.O_RDONLY)
    os.execve(fd, ["true", "{mf}"], {{}})
elif kind == "thread":
    def go():
        os.execv("/bin/true", ["true", "{mt}"])
    t = threading.Thread(target=go); t.start(); t.join()
else:
    os.execv("/bin/true", ["true", "{ml}"] + ["arg%05d" % i for i in range(3000)])
"#
    );
    for kind in ["fexecve", "thread", "long"] {
        let status = Command::new("python3")
            .args(["-c", &py, kind])
            .status()
            .expect("python3");
        assert!(status.success(), "{kind} helper failed");
    }
    let e = find(&run, &mf).expect("fexecve event");
    assert_eq!(e["comm"], "true");

    let e = find(&run, &mt).expect("exec from a non-leader thread");
    assert_eq!(e["comm"], "true");
    assert_eq!(e["pid"], e["tid"], "after exec the thread is the leader");

    let e = find(&run, &ml).expect("long argument list");
    assert_eq!(e["args_truncated"], true);
    let args = args_of(&e);
    assert_eq!(args[1], ml);
    assert!(
        args.len() > 100 && args.len() < 3001,
        "kept {} args",
        args.len()
    );
    assert_eq!(e["args_count"].as_u64(), Some(args.len() as u64));
    // only complete args are kept: the last one is whole, none is skipped
    for (i, a) in args[2..].iter().enumerate() {
        assert_eq!(a, &format!("arg{i:05}"));
    }
    let size: usize = args.iter().map(|a| a.len() + 1).sum();
    assert_eq!(e["args_size"].as_u64(), Some(size as u64));
    assert!(size <= 4096 && size > 4096 - 9, "kept {size} bytes");
}

/// Hooks a run does not need are not loaded: the fork hook feeds only the process cache
/// (`--parent`, `--ancestors`, `--exits`), the syscall ones only failed execs.
#[test]
fn only_the_hooks_a_run_needs_are_loaded() {
    let ig = Ig::new();
    let names = |extra: &[&str]| {
        let run = start(&ig, extra);
        let mut names = bpf_prog_names_of(run.child.id());
        names.sort();
        names
    };
    let plain = names(&[]);
    assert!(plain.contains(&"ig_sched_exec".to_string()), "{plain:?}");
    assert!(plain.contains(&"ig_sched_exit".to_string()), "{plain:?}");
    for absent in ["ig_sched_fork", "ig_execve_e", "ig_execve_x"] {
        assert!(!plain.iter().any(|n| n == absent), "{absent} in {plain:?}");
    }
    for flags in [&["--parent"][..], &["--ancestors", "2"], &["--exits"]] {
        let with = names(flags);
        assert!(
            with.iter().any(|n| n == "ig_sched_fork"),
            "{flags:?}: {with:?}"
        );
    }
    let failed = names(&["--ignore-failed=false"]);
    assert!(failed.iter().any(|n| n == "ig_execve_e"), "{failed:?}");
    assert!(!failed.iter().any(|n| n == "ig_sched_fork"), "{failed:?}");
}

#[test]
fn help_lists_gadget_params_from_the_image() {
    let ig = Ig::new();
    let out = ig.output(&["run", "trace_exec", "--help"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let help = stdout_of(&out);
    for want in [
        "--ignore-failed",
        "Ignore failed events",
        "[default: true]",
        "--paths",
        "Show current working directory",
        "--uid",
        "Show only events generated by processes with this uid",
    ] {
        assert!(help.contains(want), "help lacks {want:?}:\n{help}");
    }
}

#[test]
fn columns_output_has_the_seed_header() {
    let ig = Ig::new();
    let run = ig.spawn(&["run", "trace_exec", "--host", "--timeout", "60"]);
    let m = marker("cols");
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline && !run.lines().iter().any(|l| l.contains(&m)) {
        exec("/bin/true", &[&m]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let lines = run.lines();
    let header: Vec<&str> = lines
        .first()
        .map(|h| h.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        header,
        [
            "RUNTIME.CONTAINERNAME",
            "COMM",
            "PID",
            "TID",
            "PCOMM",
            "PPID",
            "ARGS",
            "ERROR",
            "USER",
            "LOGINUSER",
            "GROUP"
        ]
    );
    let row = lines
        .iter()
        .find(|l| l.contains(&m))
        .expect("a row for the marker");
    assert!(
        row.contains(&format!("/bin/true {m}")) && row.contains("root"),
        "{row}"
    );
}

#[test]
fn timeout_stops_cleanly() {
    let ig = Ig::new();
    let started = std::time::Instant::now();
    let out = ig.output(&[
        "run",
        "trace_exec",
        "--host",
        "--timeout",
        "1",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn sigint_stops_cleanly() {
    let ig = Ig::new();
    let run = start(&ig, &[]);
    let (status, _, stderr) = run.stop();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
