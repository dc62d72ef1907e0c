//! A failed exec (`--ignore-failed=false`) with `--paths` carries only its own values: the
//! fields BPF writes only sometimes (`exepath`, `cwd`, `file`, `upper_layer`) must not keep
//! what an earlier exec on the same CPU left in the per-CPU scratch event.
//!
//! Each test runs a successful exec and then a failed one on one CPU (`taskset -c 0`, or a
//! container pinned with `--cpuset-cpus 0`), with a unique marker to find its events, and
//! checks one field (the exepath test also checks the others).

mod common;
mod containers_common;
mod identity_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::{args_of, exec, marker, Ig, Running};
use containers_common::{setup, unique, DockerContainer};
use identity_common::*;

const WAIT: Duration = Duration::from_secs(20);

fn host_tracer(ig: &Ig) -> Running {
    let tracer = start_ig(
        ig,
        &[
            "run",
            "trace_exec",
            "--host",
            "--ignore-failed=false",
            "--paths",
            "-o",
            "json",
            "--timeout",
            "120",
        ],
    );
    // Events flow: a host exec shows up.
    let poke = marker("poke");
    tracer
        .wait_event(
            WAIT,
            || exec("/bin/true", &[&poke]),
            |e| args_of(e).contains(&poke),
        )
        .unwrap_or_else(|| panic!("no host event; stderr:\n{}", tracer.stderr_text()));
    tracer
}

/// Runs `script` with `sh -c` on CPU 0 from `dir`.
fn on_cpu0(dir: &Path, script: &str) {
    let status = Command::new("taskset")
        .args(["-c", "0", "sh", "-c", script])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("taskset");
    // The script ends with the failed exec: sh reports 127.
    assert_eq!(status.code(), Some(127), "{script}");
}

/// Waits for one event with exactly `args` for each entry; returns them in order.
fn events_with_args(tracer: &Running, wanted: &[Vec<String>]) -> Vec<Value> {
    wait_until(tracer, WAIT, |evs| {
        wanted.iter().all(|w| evs.iter().any(|e| &args_of(e) == w))
    });
    let evs = tracer.events();
    wanted
        .iter()
        .map(|w| {
            let found: Vec<&Value> = evs.iter().filter(|e| &args_of(e) == w).collect();
            assert_eq!(
                found.len(),
                1,
                "expected one event with args {w:?}, got:\n{}\nstderr:\n{}",
                briefs(found.iter().copied(), 20),
                tracer.stderr_text()
            );
            found[0].clone()
        })
        .collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.display()))
        .to_string_lossy()
        .into_owned()
}

fn assert_failed(e: &Value, context: &str) {
    assert_eq!(e["error"], "ENOENT", "{context}: {}", brief(e));
    assert_eq!(e["error_raw"], 2, "{context}: {}", brief(e));
}

#[test]
fn failed_exec_has_an_empty_exepath() {
    let ig = Ig::new();
    let tracer = host_tracer(&ig);
    let m = marker("stale-exepath");
    let dir = tempfile::tempdir().expect("tempdir");
    let before = format!("{m}-before");
    let target = format!("/nonexistent/{m}");
    on_cpu0(dir.path(), &format!("/bin/true {before}; {target}"));
    let evs = events_with_args(
        &tracer,
        &[strs(&["/bin/true", &before]), strs(&[target.as_str()])],
    );
    let (ok, failed) = (&evs[0], &evs[1]);
    // The exec before it did set an exepath (what a stale value would be).
    assert_eq!(
        ok["exepath"],
        canonical(Path::new("/bin/true")).as_str(),
        "{}",
        brief(ok)
    );
    assert_failed(failed, "the failed exec");
    assert_eq!(
        failed["exepath"],
        "",
        "a failed exec ran no file: its exepath must be empty, not the previous exec's.\nbefore: {}\nfailed: {}",
        brief(ok),
        brief(failed)
    );
    assert_eq!(failed["file"], target.as_str(), "{}", brief(failed));
    assert_eq!(
        failed["cwd"],
        canonical(dir.path()).as_str(),
        "{}",
        brief(failed)
    );
    assert_eq!(failed["upper_layer"], false, "{}", brief(failed));
}

#[test]
fn failed_exec_has_the_cwd_of_its_caller() {
    let ig = Ig::new();
    let tracer = host_tracer(&ig);
    let m = marker("stale-cwd");
    // The exec before runs from a long path, the failed one from a short one: a stale tail
    // of the longer path would show.
    let top = tempfile::tempdir().expect("tempdir");
    let long: PathBuf = top
        .path()
        .join("a-rather-long-directory-name-to-leave-a-long-path-behind")
        .join("and-one-more-level-of-it");
    std::fs::create_dir_all(&long).expect("mkdir");
    let short = tempfile::tempdir().expect("tempdir");
    let (long_s, short_s) = (canonical(&long), canonical(short.path()));
    let before = format!("{m}-before");
    let target = format!("/nonexistent/{m}");
    on_cpu0(
        &long,
        &format!("/bin/true {before}; cd '{short_s}' && {target}"),
    );
    let evs = events_with_args(
        &tracer,
        &[strs(&["/bin/true", &before]), strs(&[target.as_str()])],
    );
    let (ok, failed) = (&evs[0], &evs[1]);
    assert_eq!(ok["cwd"], long_s.as_str(), "{}", brief(ok));
    assert_failed(failed, "the failed exec");
    assert_eq!(
        failed["cwd"],
        short_s.as_str(),
        "the failed exec's cwd must be its caller's ({short_s}).\nbefore: {}\nfailed: {}",
        brief(ok),
        brief(failed)
    );
}

#[test]
fn failed_exec_has_the_file_it_was_given() {
    let ig = Ig::new();
    let tracer = host_tracer(&ig);
    let m = marker("stale-file");
    let dir = tempfile::tempdir().expect("tempdir");
    // A long path to exec successfully before each failure (a symlink to /bin/true).
    let long = dir.path().join(format!(
        "a-rather-long-file-name-so-that-a-stale-tail-would-show-{m}"
    ));
    std::os::unix::fs::symlink("/bin/true", &long).expect("symlink");
    let long_s = long.to_string_lossy().into_owned();
    let relative = format!("./nx-{m}");
    let absolute = format!("/nonexistent/{m}");
    let (b1, b2) = (format!("{m}-1"), format!("{m}-2"));
    on_cpu0(
        dir.path(),
        &format!("'{long_s}' {b1}; {relative}; '{long_s}' {b2}; {absolute}"),
    );
    let evs = events_with_args(
        &tracer,
        &[
            strs(&[&long_s, &b1]),
            strs(&[relative.as_str()]),
            strs(&[&long_s, &b2]),
            strs(&[absolute.as_str()]),
        ],
    );
    for ok in [&evs[0], &evs[2]] {
        assert_eq!(ok["file"], long_s.as_str(), "{}", brief(ok));
        assert_eq!(
            ok["exepath"],
            canonical(Path::new("/bin/true")).as_str(),
            "{}",
            brief(ok)
        );
    }
    for (failed, given) in [(&evs[1], &relative), (&evs[3], &absolute)] {
        assert_failed(failed, given);
        assert_eq!(
            failed["file"],
            given.as_str(),
            "the failed exec's file must be the path given to execve.\nbefore: {}\nfailed: {}",
            brief(&evs[0]),
            brief(failed)
        );
    }
}

#[test]
fn failed_exec_after_an_upper_layer_exec_is_not_upper_layer() {
    setup();
    let name = unique("stale-upper");
    let c = DockerContainer::run(&name, &["--cpuset-cpus", "0"]).expect("docker run");
    let ig = Ig::new();
    let tracer = start_ig(
        &ig,
        &[
            "run",
            "trace_exec",
            "-c",
            &name,
            "--ignore-failed=false",
            "--paths",
            "-o",
            "json",
            "--timeout",
            "120",
        ],
    );
    let copy = format!("/tmp/x-{name}");
    let target = format!("/nonexistent/{name}");
    // The copy is in the container's upper layer; busybox called by another name just says
    // "applet not found", but the exec succeeds.
    let script = format!("cp /bin/busybox {copy} && {copy} true; {target}");
    let out = Command::new("docker")
        .args(["exec", &c.id, "sh", "-c", &script])
        .output()
        .expect("docker exec");
    assert_eq!(out.status.code(), Some(127), "{script}: {out:?}");
    let evs = events_with_args(&tracer, &[strs(&[&copy, "true"]), strs(&[target.as_str()])]);
    let (ok, failed) = (&evs[0], &evs[1]);
    for e in [ok, failed] {
        assert_eq!(name_of(e), name, "{}", brief(e));
    }
    assert_eq!(
        ok["upper_layer"],
        true,
        "a binary copied in the container runs from its upper layer: {}",
        brief(ok)
    );
    assert_eq!(ok["exepath"], copy.as_str(), "{}", brief(ok));
    assert_failed(failed, "the failed exec");
    assert_eq!(
        failed["upper_layer"],
        false,
        "a failed exec ran no file: upper_layer must be false.\nbefore: {}\nfailed: {}",
        brief(ok),
        brief(failed)
    );
    assert_eq!(failed["file"], target.as_str(), "{}", brief(failed));
    assert_eq!(failed["cwd"], "/", "{}", brief(failed));
    let (events, _) = stop_ig(tracer);
    assert!(
        events.iter().all(|e| name_of(e) == name),
        "an event of another container:\n{}",
        briefs(&events, 50)
    );
}
