//! trace_exec names every event after the container that really ran it:
//!
//! * mount-namespace inodes are reused as soon as a namespace dies, so a container started
//!   right after a selected one died may get its inode: it must neither pass `-c` nor be named
//!   after the dead one (containerd across namespaces, Docker, and two selected containers);
//! * a container that lives a few milliseconds keeps its events, named after it (Docker with
//!   and without `--rm`, containerd, and `--host`).
//!
//! Every container is started after `ig` is attached. Names and markers are unique per test.

mod common;
mod containers_common;
mod identity_common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use common::{args_of, Ig, Running};
use containers_common::{setup, unique};
use identity_common::*;

/// How long the expected events may take to show up after the last container ran.
const EVENTS_WAIT: Duration = Duration::from_secs(20);
/// After the expected events came: time for unexpected ones (held events wait up to 1.5 s).
const SETTLE: Duration = Duration::from_millis(2000);

/// `ig run trace_exec … -o json` with Docker and the test containerd both required.
fn trace_exec_args(sock: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["run", "trace_exec"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(
        [
            "-o",
            "json",
            "--timeout",
            "120",
            "--runtimes",
            "docker,containerd",
            "--containerd-socketpath",
            sock,
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a
}

fn start(ig: &Ig, args: &[String]) -> Running {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    start_ig(ig, &a)
}

/// One exec the run must show: its exact args and the container it must be named after.
#[derive(Clone, Debug)]
struct Expect {
    args: Vec<String>,
    name: String,
    runtime: &'static str,
    /// The container ID, when the test knows it.
    id: Option<String>,
}

fn expect(args: &[&str], name: &str, runtime: &'static str, id: Option<&str>) -> Expect {
    Expect {
        args: args.iter().map(|s| s.to_string()).collect(),
        name: name.to_string(),
        runtime,
        id: id.map(str::to_string),
    }
}

/// Expected execs grouped by args (several containers may run the same command).
fn by_args(expected: &[Expect]) -> BTreeMap<Vec<String>, Vec<&Expect>> {
    let mut m: BTreeMap<Vec<String>, Vec<&Expect>> = BTreeMap::new();
    for e in expected {
        m.entry(e.args.clone()).or_default().push(e);
    }
    m
}

fn all_seen(events: &[Value], expected: &[Expect]) -> bool {
    by_args(expected)
        .iter()
        .all(|(args, want)| events.iter().filter(|e| &args_of(e) == args).count() >= want.len())
}

fn matches(e: &Value, want: &Expect) -> bool {
    name_of(e) == want.name
        && runtime_of(e) == want.runtime
        && want.id.as_deref().is_none_or(|id| id_of(e) == id)
}

/// What is wrong with `events` against exactly `expected` (nothing more, nothing less).
fn problems(events: &[Value], expected: &[Expect]) -> Vec<String> {
    let groups = by_args(expected);
    let mut out = Vec::new();
    for (args, want) in &groups {
        let got: Vec<&Value> = events.iter().filter(|e| &args_of(e) == args).collect();
        if got.len() != want.len() {
            out.push(format!(
                "{args:?}: {} event(s), expected {} (named {:?})",
                got.len(),
                want.len(),
                want[0].name
            ));
        }
        // Each event must match one expected exec not matched yet.
        let mut left: Vec<&Expect> = want.clone();
        for e in got {
            match left.iter().position(|w| matches(e, w)) {
                Some(i) => {
                    left.remove(i);
                }
                None => out.push(format!(
                    "{args:?}: expected name {:?} runtime {:?} id {}, got {}",
                    want[0].name,
                    want[0].runtime,
                    want.iter()
                        .map(|w| format!("{:?}", w.id.as_deref().unwrap_or("(any)")))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    brief(e)
                )),
            }
        }
    }
    for e in events {
        if !groups.contains_key(&args_of(e)) {
            out.push(format!("unexpected event: {}", brief(e)));
        }
    }
    out
}

/// Waits for the expected events, lets unexpected ones arrive, stops `ig` and asserts that
/// the events it printed (those `relevant` keeps) are exactly `expected`.
fn finish(
    tracer: Running,
    expected: &[Expect],
    relevant: impl Fn(&Value) -> bool,
    context: &str,
) -> Vec<Value> {
    wait_until(&tracer, EVENTS_WAIT, |evs| {
        let mine: Vec<Value> = evs.iter().filter(|e| relevant(e)).cloned().collect();
        all_seen(&mine, expected)
    });
    std::thread::sleep(SETTLE);
    let (events, stderr) = stop_ig(tracer);
    let mine: Vec<Value> = events.into_iter().filter(|e| relevant(e)).collect();
    let bad = problems(&mine, expected);
    assert!(
        bad.is_empty(),
        "{context}\nproblems:\n  {}\nexpected:\n  {}\nevents seen:\n{}\nig stderr:\n{stderr}",
        bad.join("\n  "),
        expected
            .iter()
            .map(|e| format!("{:?} named {:?} ({})", e.args, e.name, e.runtime))
            .collect::<Vec<_>>()
            .join("\n  "),
        briefs(&mine, 200)
    );
    mine
}

/// `docker run --rm --cidfile … --name NAME IMAGE cmd…`; the container's ID.
fn docker_rm_with_id(dir: &tempfile::TempDir, name: &str, cmd: &[&str]) -> String {
    let cidfile = dir.path().join(format!("{name}.cid"));
    let _ = std::fs::remove_file(&cidfile);
    let cid_arg = cidfile.to_string_lossy().into_owned();
    docker_run_rm(name, &["--cidfile", &cid_arg], cmd);
    let id = read_cidfile(&cidfile);
    assert_eq!(id.len(), 64, "no container ID in {cid_arg}");
    id
}

// ---------------------------------------------------------------------------------------
// 1. Reused mount-namespace inodes
// ---------------------------------------------------------------------------------------

#[test]
fn containerd_container_in_a_reused_inode_is_not_the_selected_one() {
    let sock = setup();
    ensure_ctr_namespace(&sock, "team1");
    let keep = unique("keep");
    let other = unique("other");
    let ig = Ig::new();
    let tracer = start(&ig, &trace_exec_args(&sock, &["-c", &keep]));
    let _keep_guard = CtrGuard::new(&sock, "default", &keep);
    let mut _guards = Vec::new();
    let mut expected = Vec::new();
    for k in 1..=3 {
        let mine = format!("mine-{keep}-{k}");
        let script = format!("/bin/echo {mine}; sleep 0.3");
        ctr_run_rm(&sock, "default", &keep, &["sh", "-c", &script]);
        let other_k = format!("{other}-{k}");
        _guards.push(CtrGuard::new(&sock, "team1", &other_k));
        ctr_run_rm(
            &sock,
            "team1",
            &other_k,
            &["/bin/echo", &format!("foreign-{other}-{k}")],
        );
        let id = Some(keep.as_str());
        expected.push(expect(&["sh", "-c", &script], &keep, "containerd", id));
        expected.push(expect(&["/bin/echo", &mine], &keep, "containerd", id));
        expected.push(expect(&["sleep", "0.3"], &keep, "containerd", id));
    }
    // With -c every event printed must be one of `keep`'s: all are relevant.
    let events = finish(
        tracer,
        &expected,
        |_| true,
        &format!("-c {keep} (containerd namespace default), {other}-N in namespace team1"),
    );
    assert!(
        !events
            .iter()
            .any(|e| args_of(e).iter().any(|a| a.contains("foreign-"))),
        "an unselected container's exec passed -c {keep}:\n{}",
        briefs(&events, 100)
    );
}

#[test]
fn docker_container_in_a_reused_inode_is_not_the_selected_one() {
    let sock = setup();
    let keep = unique("dkeep");
    let other = unique("dother");
    let cids = tempfile::tempdir().expect("tempdir");
    let ig = Ig::new();
    let tracer = start(&ig, &trace_exec_args(&sock, &["-c", &keep]));
    let _keep_guard = DockerGuard(keep.clone());
    let mut _guards = Vec::new();
    let mut expected = Vec::new();
    for k in 1..=3 {
        let mine = format!("mine-{keep}-{k}");
        let script = format!("/bin/echo {mine}; sleep 0.3");
        let id = docker_rm_with_id(&cids, &keep, &["sh", "-c", &script]);
        let other_k = format!("{other}-{k}");
        _guards.push(DockerGuard(other_k.clone()));
        docker_run_rm(
            &other_k,
            &[],
            &["/bin/echo", &format!("foreign-{other}-{k}")],
        );
        let id = Some(id.as_str());
        expected.push(expect(&["sh", "-c", &script], &keep, "docker", id));
        expected.push(expect(&["/bin/echo", &mine], &keep, "docker", id));
        expected.push(expect(&["sleep", "0.3"], &keep, "docker", id));
    }
    let events = finish(
        tracer,
        &expected,
        |_| true,
        &format!("-c {keep} (Docker), {other}-N started right after each"),
    );
    assert!(
        !events
            .iter()
            .any(|e| args_of(e).iter().any(|a| a.contains("foreign-"))),
        "an unselected container's exec passed -c {keep}:\n{}",
        briefs(&events, 100)
    );
}

/// Two selected containers started one after the other, each round one of them long
/// enough to be announced, then the other one quick (it may get the first one's inode while
/// that one's verdict and name are still remembered): every event named after the one that
/// ran it, no `b` event named `a` and no `a` event named `b`.
fn two_selected(docker: bool) {
    let sock = setup();
    let a = unique(if docker { "da" } else { "ca" });
    let b = unique(if docker { "db" } else { "cb" });
    let cids = tempfile::tempdir().expect("tempdir");
    let ig = Ig::new();
    let both = format!("{a},{b}");
    let tracer = start(&ig, &trace_exec_args(&sock, &["-c", &both]));
    let _guards = if docker {
        (Some((DockerGuard(a.clone()), DockerGuard(b.clone()))), None)
    } else {
        (
            None,
            Some((
                CtrGuard::new(&sock, "default", &a),
                CtrGuard::new(&sock, "default", &b),
            )),
        )
    };
    let runtime = if docker { "docker" } else { "containerd" };
    let start_one = |name: &str, cmd: &[&str]| -> String {
        if docker {
            docker_rm_with_id(&cids, name, cmd)
        } else {
            ctr_run_rm(&sock, "default", name, cmd);
            name.to_string()
        }
    };
    let mut expected = Vec::new();
    for k in 1..=4 {
        let (first, second) = if k % 2 == 1 { (&a, &b) } else { (&b, &a) };
        // a sleeps 0.2 s, b 0.21 s: even their sleeps tell them apart.
        let pause = if first == &a { "0.2" } else { "0.21" };
        let mark = format!("mark-{first}-{k}");
        let script = format!("/bin/echo {mark}; sleep {pause}");
        let cmd = ["sh", "-c", script.as_str()];
        let id = start_one(first, &cmd);
        let id = Some(id.as_str());
        expected.push(expect(&cmd, first, runtime, id));
        expected.push(expect(&["/bin/echo", &mark], first, runtime, id));
        expected.push(expect(&["sleep", pause], first, runtime, id));

        let quick = format!("mark-{second}-{k}");
        let cmd = ["/bin/echo", quick.as_str()];
        let id = start_one(second, &cmd);
        expected.push(expect(&cmd, second, runtime, Some(id.as_str())));
    }
    finish(
        tracer,
        &expected,
        |_| true,
        &format!(
            "-c {both} ({runtime}), 4 rounds: one of them with a 0.2 s sleep, then the other one quick"
        ),
    );
}

#[test]
fn docker_two_selected_containers_keep_their_own_names() {
    two_selected(true);
}

#[test]
fn containerd_two_selected_containers_keep_their_own_names() {
    two_selected(false);
}

// ---------------------------------------------------------------------------------------
// 2. Containers that live a few milliseconds
// ---------------------------------------------------------------------------------------

fn quick_docker(rm: bool) {
    let sock = setup();
    let name = unique(if rm { "quick" } else { "quick-norm" });
    let cids = tempfile::tempdir().expect("tempdir");
    let ig = Ig::new();
    let tracer = start(&ig, &trace_exec_args(&sock, &["-c", &name]));
    let _guard = DockerGuard(name.clone());
    let id = if rm {
        docker_rm_with_id(&cids, &name, &["/bin/echo", "first"])
    } else {
        let cidfile = cids.path().join("cid");
        let cid_arg = cidfile.to_string_lossy().into_owned();
        let out = containers_common::run(
            "docker",
            &[
                "run",
                "--cidfile",
                &cid_arg,
                "--name",
                &name,
                containers_common::IMAGE,
                "/bin/echo",
                "first",
            ],
        )
        .expect("docker run");
        assert_eq!(out, "first");
        read_cidfile(&cidfile)
    };
    let expected = [expect(
        &["/bin/echo", "first"],
        &name,
        "docker",
        Some(id.as_str()),
    )];
    finish(
        tracer,
        &expected,
        |_| true,
        &format!(
            "-c {name}: docker run {}--name {name} /bin/echo first",
            if rm { "--rm " } else { "" }
        ),
    );
}

#[test]
fn docker_quick_container_with_rm_is_traced() {
    quick_docker(true);
}

#[test]
fn docker_quick_container_without_rm_is_traced() {
    quick_docker(false);
}

#[test]
fn containerd_quick_container_is_traced() {
    let sock = setup();
    let id = unique("cquick");
    let ig = Ig::new();
    let tracer = start(&ig, &trace_exec_args(&sock, &["-c", &id]));
    let _guard = CtrGuard::new(&sock, "default", &id);
    let out = ctr_run_rm(&sock, "default", &id, &["/bin/echo", "first"]);
    assert_eq!(out, "first");
    let expected = [expect(
        &["/bin/echo", "first"],
        &id,
        "containerd",
        Some(id.as_str()),
    )];
    finish(
        tracer,
        &expected,
        |_| true,
        &format!("-c {id}: ctr run --rm {id} /bin/echo first"),
    );
}

/// With `--host` (every process), a quick container's exec still carries its container.
fn quick_with_host(docker: bool) {
    let sock = setup();
    let name = unique(if docker { "hquick" } else { "hcquick" });
    let marker = format!("first-{name}");
    let cids = tempfile::tempdir().expect("tempdir");
    let ig = Ig::new();
    let tracer = start(&ig, &trace_exec_args(&sock, &["--host"]));
    let _dg = DockerGuard(name.clone());
    let _cg = CtrGuard::new(&sock, "default", &name);
    let cmd = ["/bin/echo", marker.as_str()];
    let (runtime, id) = if docker {
        ("docker", docker_rm_with_id(&cids, &name, &cmd))
    } else {
        ctr_run_rm(&sock, "default", &name, &cmd);
        ("containerd", name.clone())
    };
    let expected = [expect(&cmd, &name, runtime, Some(id.as_str()))];
    // The container's exec, not the host's `docker run …`/`ctr run …` that names it.
    let marker2 = marker.clone();
    finish(
        tracer,
        &expected,
        move |e| {
            let args = args_of(e);
            args.first().is_some_and(|a| a == "/bin/echo") && args.contains(&marker2)
        },
        &format!("--host: {runtime} container {name} running /bin/echo {marker}"),
    );
}

#[test]
fn docker_quick_container_with_host_carries_its_container() {
    quick_with_host(true);
}

#[test]
fn containerd_quick_container_with_host_carries_its_container() {
    quick_with_host(false);
}
