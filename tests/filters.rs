//! `--filter` as users of Inspektor Gadget and execsnoop (`-n`, `-l`) use it: on any field,
//! enriched ones included, every operator, a list field as its joined text; conditions a gadget
//! parameter can decide pushed into BPF; a bad filter refused before anything loads; the same
//! through the daemon.

mod common;
mod containers_common;
mod daemon_common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use containers_common::{setup, unique, DockerContainer};
use daemon_common::Daemon;

const WAIT: Duration = Duration::from_secs(20);

/// A copy of /bin/true under `name`, so its comm is ours alone.
fn true_named(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::copy("/bin/true", &path).expect("copy true");
    path.to_string_lossy().into_owned()
}

#[test]
fn every_operator_on_plain_and_list_fields() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mark = marker("flt");
    let name = format!("t{}", std::process::id() % 1_000_000);
    let ours = true_named(dir.path(), &name);
    for (filter, pass, fail) in [
        // comm== and comm!= (execsnoop -n)
        (
            format!("comm=={name}"),
            (ours.clone(), vec![format!("{mark}-a")]),
            ("/bin/true".to_string(), vec![format!("{mark}-a")]),
        ),
        // a regex on the joined arguments (execsnoop -l)
        (
            format!("args~{mark}-b [0-9]+$"),
            (
                "/bin/true".to_string(),
                vec![format!("{mark}-b"), "42".into()],
            ),
            (
                "/bin/true".to_string(),
                vec![format!("{mark}-b"), "x42".into()],
            ),
        ),
        // numbers compare as numbers; a comma joins conditions; \, is a comma
        (
            format!("error_raw>0,args~{mark}-c\\,d"),
            ("/nonexistent/flt".to_string(), vec![format!("{mark}-c,d")]),
            ("/bin/true".to_string(), vec![format!("{mark}-c,d")]),
        ),
        (
            format!("pid>=1,pid<=4194304,comm!=true,args~{mark}-e"),
            (ours.clone(), vec![format!("{mark}-e")]),
            ("/bin/true".to_string(), vec![format!("{mark}-e")]),
        ),
        (
            format!("error==ENOENT,args~{mark}-f"),
            ("/nonexistent/flt".to_string(), vec![format!("{mark}-f")]),
            ("/bin/true".to_string(), vec![format!("{mark}-f")]),
        ),
    ] {
        let run = ig.spawn(&[
            "run",
            "trace_exec",
            "--host",
            "--ignore-failed=false",
            "-o",
            "json",
            "--timeout",
            "60",
            "--filter",
            &filter,
        ]);
        let want = pass.1.join(" ");
        let exec = |(prog, a): &(String, Vec<String>)| {
            let _ = std::process::Command::new(prog).args(a).output();
        };
        let seen = run.wait_event(
            WAIT,
            || {
                exec(&fail);
                exec(&pass);
            },
            |e| args_of(e)[1..].join(" ") == want,
        );
        assert!(
            seen.is_some(),
            "{filter}: no event of ours; {}",
            run.stderr_text()
        );
        exec(&fail);
        std::thread::sleep(Duration::from_millis(300));
        let events = run.events();
        assert!(!events.is_empty());
        for e in &events {
            assert_eq!(
                args_of(e)[1..].join(" "),
                want,
                "{filter} let this through: {e}"
            );
        }
    }
}

#[test]
fn an_enriched_field_selects_a_container() {
    setup();
    let ig = Ig::new();
    let name = unique("flt-c");
    let _c = DockerContainer::run_script(&name, "while true; do /bin/true tick; sleep 0.2; done")
        .expect("docker run");
    let host = marker("flt-host");
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "60",
        "-F",
        &format!("runtime.containerName=={name}"),
    ]);
    let seen = run.wait_event(
        WAIT,
        || exec("/bin/true", &[&host]),
        |e| args_of(e).contains(&"tick".to_string()),
    );
    assert!(
        seen.is_some(),
        "no exec of the container: {}",
        run.stderr_text()
    );
    let events = run.events();
    assert!(
        events
            .iter()
            .all(|e| e["runtime"]["containerName"] == name.as_str()),
        "{events:?}"
    );
}

/// `uid==N` is decided in BPF by trace_exec's `--uid` parameter (a bad value is the parameter's
/// error), `comm==NAME` by the test gadget's string parameter.
#[test]
fn conditions_a_parameter_can_decide_are_pushed_into_bpf() {
    let ig = Ig::new();
    let out = ig.output(&[
        "run",
        "trace_exec",
        "--host",
        "--filter",
        "uid==abc",
        "--timeout",
        "5",
    ]);
    assert_clean_failure(&out, "invalid value \"abc\" for --uid: expected an integer");

    let mark = marker("flt-uid");
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "60",
        "--filter",
        "uid==54321",
    ]);
    let seen = run.wait_event(
        WAIT,
        || {
            exec("/bin/true", &[&mark]);
            exec(
                "setpriv",
                &[
                    "--reuid=54321",
                    "--regid=54321",
                    "--clear-groups",
                    "/bin/true",
                    &mark,
                ],
            );
        },
        |e| args_of(e).contains(&mark),
    );
    let e = seen.unwrap_or_else(|| panic!("no event: {}", run.stderr_text()));
    assert_eq!(e["uid"], 54321, "{e}");
    assert!(run.events().iter().all(|e| e["uid"] == 54321));

    let gadget = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/trace_open");
    assert!(build(&ig, Path::new(gadget), "flt_open:v1")
        .status
        .success());
    let out = ig.output(&[
        "run",
        "flt_open:v1",
        "--verify-image=false",
        "--host",
        "--filter",
        "comm==a-name-longer-than-15",
        "--timeout",
        "5",
    ]);
    assert_clean_failure(&out, "for --comm: longer than 15 bytes");
}

#[test]
fn a_bad_filter_is_refused_before_anything_loads() {
    let ig = Ig::new();
    for (filter, want) in [
        (
            "nosuch==1",
            "invalid filter \"nosuch==1\": no field `nosuch` (fields: ",
        ),
        (
            "comm~(",
            "invalid filter \"comm~(\": bad regular expression",
        ),
        ("comm", "after `comm` comes one of ==, !=, <, <=, >, >=, ~"),
        (
            "runtime.containerName=web",
            "after `runtime.containerName` comes one of",
        ),
    ] {
        let started = Instant::now();
        let out = ig.output(&[
            "run",
            "trace_exec",
            "--host",
            "-F",
            filter,
            "--timeout",
            "30",
        ]);
        assert_clean_failure(&out, want);
        assert!(
            !stderr_of(&out).contains("recording") && started.elapsed() < Duration::from_secs(15),
            "{filter}: {}",
            stderr_of(&out)
        );
    }
    let out = ig.output(&[
        "run",
        "traceloop",
        "--host",
        "-F",
        "comm==x",
        "--timeout",
        "5",
    ]);
    assert_clean_failure(
        &out,
        "--filter is for tracers; a flight recorder takes --syscall-filters",
    );
}

#[test]
fn the_daemon_applies_a_remote_runs_filter() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("r{}", std::process::id() % 1_000_000);
    let ours = true_named(dir.path(), &name);
    let mark = marker("flt-remote");
    let run = d.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "60",
        "-F",
        &format!("comm=={name}"),
    ]);
    let seen = run.wait_event(
        WAIT,
        || {
            exec("/bin/true", &[&mark]);
            exec(&ours, &[&mark]);
        },
        |e| args_of(e).contains(&mark),
    );
    let e = seen.unwrap_or_else(|| panic!("no event: {}", run.stderr_text()));
    assert_eq!(e["comm"], name.as_str());
    assert!(run.events().iter().all(|e| e["comm"] == name.as_str()));
    let out = d.ig(&[
        "run",
        "trace_exec",
        "--host",
        "-F",
        "nosuch==1",
        "--timeout",
        "5",
    ]);
    assert_clean_failure(&out, "no field `nosuch`");
}
