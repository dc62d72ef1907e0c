//! trace_exec's process lineage on the real kernel: exec ids and parents, processes that
//! started before `ig`, pid reuse, exits, binary properties, a bounded cache under a storm.

mod common;
#[path = "daemon_common/mod.rs"]
mod daemon_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The 20,000-process storm fills every tracer's ring buffer on the machine (`--parent` sends
/// whole records: ~700 fit): the other tests of this file, whose runs trace the host too, wait
/// for it rather than lose their own events to it.
static STORM: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn beside_the_storm() -> std::sync::RwLockReadGuard<'static, ()> {
    STORM.read().unwrap_or_else(|p| p.into_inner())
}

/// Starts trace_exec with `extra` and returns once a warm-up exec shows up.
fn start_env(ig: &Ig, extra: &[&str], env: &[(&str, &str)]) -> Running {
    let mut args = vec![
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "240",
    ];
    args.extend_from_slice(extra);
    let run = ig.spawn_with_env(&args, env);
    run.wait_attached(WAIT);
    run
}

fn start(ig: &Ig, extra: &[&str]) -> Running {
    start_env(ig, extra, &[])
}

fn has_arg(e: &Value, needle: &str) -> bool {
    args_of(e).iter().any(|a| a.contains(needle))
}

fn exec_event(run: &Running, needle: &str) -> Value {
    run.wait_event(WAIT, || {}, |e| has_arg(e, needle))
        .unwrap_or_else(|| {
            panic!(
                "no exec event with {needle}; stderr:\n{}",
                run.stderr_text()
            )
        })
}

fn by_exec_id(run: &Running, id: &str) -> Value {
    run.wait_event(
        WAIT,
        || {},
        |e| e["exec_id"] == id && e.get("args").is_some(),
    )
    .unwrap_or_else(|| panic!("no exec event with exec_id {id}"))
}

/// `exec_id` decoded: (node, key ns, pid).
fn decode(id: &str) -> (String, u64, u32) {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(id)
        .expect("exec_id is base64");
    let text = String::from_utf8(raw).expect("utf8");
    let mut parts = text.rsplitn(3, ':');
    let pid = parts.next().and_then(|p| p.parse().ok()).expect("pid");
    let key = parts.next().and_then(|k| k.parse().ok()).expect("key");
    let node = parts.next().expect("node").to_string();
    (node, key, pid)
}

fn stat_start_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect(")") + 1..];
    rest.split_whitespace()
        .nth(19)
        .and_then(|s| s.parse().ok())
        .expect("starttime")
}

#[test]
fn nested_shells_chain_their_exec_ids() {
    let _storm = beside_the_storm();
    let ig = Ig::new();
    let run = start(&ig, &["--parent", "--paths"]);
    let m = marker("chain");
    let inner = format!("/bin/true {m}");
    let outer = format!("sh -c \"{inner}\"");
    exec("sh", &["-c", &outer]);

    let e3 = exec_event(&run, &m);
    let e3 = run
        .wait_event(WAIT, || {}, |e| args_of(e) == ["/bin/true", m.as_str()])
        .unwrap_or(e3);
    assert_eq!(args_of(&e3), ["/bin/true", m.as_str()]);
    let e2 = by_exec_id(&run, e3["parent_exec_id"].as_str().expect("parent_exec_id"));
    assert_eq!(args_of(&e2), ["sh", "-c", inner.as_str()]);
    let e1 = by_exec_id(&run, e2["parent_exec_id"].as_str().expect("parent_exec_id"));
    assert_eq!(args_of(&e1), ["sh", "-c", outer.as_str()]);
    // Three images, three ids; the first one's parent is this test (started before ig: /proc).
    assert_ne!(e1["exec_id"], e2["exec_id"]);
    assert_ne!(e2["exec_id"], e3["exec_id"]);
    let me = std::process::id();
    assert_eq!(e1["parent"]["pid"].as_u64(), Some(me as u64));
    let (node, key, pid) = decode(e1["parent_exec_id"].as_str().expect("id"));
    assert_eq!(pid, me);
    assert_eq!(
        key,
        stat_start_ticks(me) * 10_000_000,
        "a /proc process's key is its start tick"
    );
    assert_eq!(
        node,
        fs::read_to_string("/proc/sys/kernel/hostname")
            .expect("hostname")
            .trim()
    );
    let exe = fs::read_link("/proc/self/exe").expect("exe");
    assert_eq!(e1["parent"]["exepath"].as_str(), exe.to_str());
    // An exec's id is its own pid and key: the process's start (before the exec) plus its exec
    // count, so the images of one process that exec'd in place have consecutive keys.
    let (_, key3, pid3) = decode(e3["exec_id"].as_str().expect("id"));
    assert_eq!(pid3 as u64, e3["pid"].as_u64().expect("pid"));
    assert!(key3 < e3["timestamp_raw"].as_u64().expect("ts"));
    assert_eq!(e3["exec_key"].as_u64(), Some(key3));
    let (_, key2, pid2) = decode(e2["exec_id"].as_str().expect("id"));
    if pid2 == pid3 {
        assert_eq!(key3, key2 + 1, "an exec in place: the next key");
    }
    // parent.* is the parent image
    assert_eq!(e3["parent"]["exec_id"], e2["exec_id"]);
    assert_eq!(args_of(&e3["parent"]), ["sh", "-c", inner.as_str()]);
    assert!(e3["start_time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let (status, _, stderr) = run.stop();
    assert!(status.success(), "ig: {stderr}");
}

/// Two runs at once name the same exec alike: the id is read from the task, not a clock.
#[test]
fn two_runs_give_an_exec_the_same_id() {
    let _storm = beside_the_storm();
    let ig = Ig::new();
    // One run keeps a process cache (--parent: ids computed once per image), the other none
    // (ids built from each record's keys): the same ids either way.
    let a = start(&ig, &[]);
    let b = start(&ig, &["--parent"]);
    let m = marker("twice");
    exec("sh", &["-c", &format!("/bin/true {m}")]);
    let ea = exec_event(&a, &m);
    let eb = exec_event(&b, &m);
    assert_eq!(ea["exec_id"], eb["exec_id"]);
    assert_eq!(ea["parent_exec_id"], eb["parent_exec_id"]);
    // start_time is the boot-clock key plus each run's own wall-minus-boot offset, read once
    // at its start: two runs agree to a few microseconds, not to the nanosecond.
    let day = |e: &Value| {
        e["start_time"]
            .as_str()
            .and_then(|s| s.get(..16))
            .map(String::from)
    };
    assert_eq!(day(&ea), day(&eb), "{ea} {eb}");
    assert_eq!(eb["parent"]["exec_id"], eb["parent_exec_id"], "{eb}");
    a.stop();
    b.stop();
}

#[test]
fn a_process_started_before_ig_is_a_parent_from_proc() {
    let _storm = beside_the_storm();
    let m = marker("loop");
    let script = format!("while :; do /bin/true {m}; sleep 0.05; done");
    let mut looper = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn loop");
    let ig = Ig::new();
    let run = start(&ig, &["--parent", "--ancestors", "2"]);
    let e = run
        .wait_event(WAIT, || {}, |e| args_of(e) == ["/bin/true", m.as_str()])
        .expect("the loop's child");
    let lp = looper.id();
    assert_eq!(e["ppid"].as_u64(), Some(lp as u64));
    assert_eq!(e["parent"]["pid"].as_u64(), Some(lp as u64));
    assert_eq!(args_of(&e["parent"]), ["sh", "-c", script.as_str()]);
    let sh_exe = fs::read_link(format!("/proc/{lp}/exe")).expect("exe");
    assert_eq!(e["parent"]["exepath"].as_str(), sh_exe.to_str());
    let (_, key, pid) = decode(e["parent_exec_id"].as_str().expect("id"));
    assert_eq!((key, pid), (stat_start_ticks(lp) * 10_000_000, lp));
    // ancestors: the loop, then this test
    let pids: Vec<String> = e["ancestors"]["pid"]
        .as_array()
        .expect("ancestors.pid")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_eq!(pids, [lp.to_string(), std::process::id().to_string()]);
    let _ = looper.kill();
    let _ = looper.wait();
    run.stop();
}

#[test]
fn a_reused_pid_in_a_pid_namespace_is_never_the_parent() {
    let _storm = beside_the_storm();
    let ig = Ig::new();
    let run = start(&ig, &["--parent"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let m = marker("reuse");
    // Two shells get the same pid in a new pid namespace (ns_last_pid set back in between),
    // each runs /bin/true as a child (`; :` keeps the shell from exec'ing it in place).
    let script = format!(
        "sh -c 'echo $$ >> {p}; /bin/true {m}-first; :'; \
         echo $(( $(tail -n1 {p}) - 1 )) > /proc/sys/kernel/ns_last_pid; \
         sh -c 'echo $$ >> {p}; /bin/true {m}-second; :'",
        p = pids.display()
    );
    let st = Command::new("unshare")
        .args(["--pid", "--fork", "sh", "-c", &script])
        .status()
        .expect("unshare");
    assert!(st.success());
    let ns_pids = fs::read_to_string(&pids).expect("pids");
    let ns_pids: Vec<&str> = ns_pids.lines().collect();
    assert_eq!(ns_pids.len(), 2);
    assert_eq!(
        ns_pids[0], ns_pids[1],
        "the second shell reused the first one's pid"
    );

    let first = run
        .wait_event(
            WAIT,
            || {},
            |e| args_of(e) == ["/bin/true", &format!("{m}-first")],
        )
        .expect("first child");
    let second = run
        .wait_event(
            WAIT,
            || {},
            |e| args_of(e) == ["/bin/true", &format!("{m}-second")],
        )
        .expect("second child");
    let p1 = by_exec_id(&run, first["parent_exec_id"].as_str().expect("id"));
    let p2 = by_exec_id(&run, second["parent_exec_id"].as_str().expect("id"));
    assert!(has_arg(&p1, &format!("{m}-first")), "first parent: {p1}");
    assert!(has_arg(&p2, &format!("{m}-second")), "second parent: {p2}");
    assert_ne!(p1["exec_id"], p2["exec_id"]);
    assert!(args_of(&second["parent"])
        .iter()
        .any(|a| a.contains(&format!("{m}-second"))));
    run.stop();
}

fn exit_event(run: &Running, pid: u32) -> Value {
    run.wait_event(
        WAIT,
        || {},
        |e| e.get("exit_code").is_some() && e["pid"].as_u64() == Some(pid as u64),
    )
    .unwrap_or_else(|| panic!("no exit event for {pid}; stderr:\n{}", run.stderr_text()))
}

#[test]
fn exits_show_their_code_or_signal() {
    let _storm = beside_the_storm();
    let ig = Ig::new();
    let run = start(&ig, &["--exits"]);
    let m = marker("exit7");
    let mut seven = Command::new("sh")
        .args(["-c", "exit 7", &m])
        .spawn()
        .expect("sh");
    let st = seven.wait().expect("wait");
    assert_eq!(st.code(), Some(7));
    let exec = exec_event(&run, &m);
    let exit = exit_event(&run, seven.id());
    assert_eq!(exit["exit_code"], 7);
    assert_eq!(exit["signal"], "");
    assert_eq!(exit["exec_id"], exec["exec_id"], "the exit names the image");
    assert!(exit["duration_ns"].as_u64().is_some_and(|d| d > 0));

    let mut sleeper = Command::new("sleep").arg("300").spawn().expect("sleep");
    let pid = sleeper.id();
    run.wait_event(
        WAIT,
        || {},
        |e| e["pid"].as_u64() == Some(pid as u64) && e.get("args").is_some(),
    )
    .expect("sleep's exec");
    sleeper.kill().expect("SIGKILL");
    let _ = sleeper.wait();
    let exit = exit_event(&run, pid);
    assert_eq!(exit["signal"], "SIGKILL");
    assert_eq!(exit["signal_raw"], 9);
    assert_eq!(exit["exit_code"], 0);
    // Without --exits there is no exit event
    let (status, _, _) = run.stop();
    assert!(status.success());
    let run = start(&ig, &[]);
    let mut again = Command::new("sh")
        .args(["-c", "exit 3", &marker("noexit")])
        .spawn()
        .expect("sh");
    let _ = again.wait();
    std::thread::sleep(Duration::from_millis(500));
    let warm = marker("after");
    exec_event_after(&run, &warm);
    assert!(run.events().iter().all(|e| e.get("exit_code").is_none()));
    run.stop();
}

fn exec_event_after(run: &Running, m: &str) {
    let seen = run.wait_event(WAIT, || exec("/bin/true", &[m]), |e| has_arg(e, m));
    assert!(seen.is_some());
}

/// A copy of /bin/true under a directory anyone can enter.
fn copy_true(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let path = dir.join(name);
    fs::copy("/bin/true", &path).expect("copy");
    path
}

#[test]
fn setuid_setgid_file_caps_and_memfd_are_flagged() {
    let _storm = beside_the_storm();
    let ig = Ig::new();
    let run = start(&ig, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let suid = copy_true(dir.path(), "suid-true");
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).expect("chmod");
    let sgid = copy_true(dir.path(), "sgid-true");
    fs::set_permissions(&sgid, fs::Permissions::from_mode(0o2755)).expect("chmod");
    let capped = copy_true(dir.path(), "cap-true");
    let st = Command::new("setcap")
        .args(["cap_net_raw+ep"])
        .arg(&capped)
        .status()
        .expect("setcap");
    assert!(st.success());
    let as_user = |path: &std::path::Path, m: &str| {
        let st = Command::new("setpriv")
            .args(["--reuid", "12345", "--regid", "12345", "--clear-groups"])
            .arg(path)
            .arg(m)
            .status()
            .expect("setpriv");
        assert!(st.success());
    };
    let (m1, m2, m3, m4) = (
        marker("suid"),
        marker("sgid"),
        marker("caps"),
        marker("plain"),
    );
    as_user(&suid, &m1);
    as_user(&sgid, &m2);
    as_user(&capped, &m3);
    as_user(std::path::Path::new("/bin/true"), &m4);
    let first_is = |path: &std::path::Path, m: &str| {
        let path = path.to_str().expect("utf8").to_string();
        let m = m.to_string();
        run.wait_event(WAIT, || {}, |e| args_of(e) == [path.as_str(), m.as_str()])
            .unwrap_or_else(|| panic!("no exec of {path}"))
    };
    let e = first_is(&suid, &m1);
    assert_eq!(
        (e["setuid"].clone(), e["setgid"].clone(), e["uid"].clone()),
        (true.into(), false.into(), 12345.into())
    );
    let e = first_is(&sgid, &m2);
    assert_eq!(
        (e["setuid"].clone(), e["setgid"].clone()),
        (false.into(), true.into())
    );
    let e = first_is(&capped, &m3);
    assert_eq!(
        (e["setuid"].clone(), e["caps_raised"].clone()),
        (false.into(), true.into())
    );
    let e = first_is(std::path::Path::new("/bin/true"), &m4);
    assert_eq!(
        (
            e["setuid"].clone(),
            e["setgid"].clone(),
            e["caps_raised"].clone(),
            e["fileless"].clone()
        ),
        (false.into(), false.into(), false.into(), false.into())
    );
    // root running the setuid-root copy: nothing changes
    let m5 = marker("rootsuid");
    exec(suid.to_str().expect("utf8"), &[&m5]);
    assert_eq!(exec_event(&run, &m5)["setuid"], false);

    // fexecve of a memfd holding /bin/true
    let m6 = marker("memfd");
    let py = format!(
        "import os\nfd = os.memfd_create('x', 0)\nos.write(fd, open('/bin/true', 'rb').read())\nos.execve(fd, ['memtrue', '{m6}'], {{}})\n"
    );
    let st = Command::new("/usr/bin/python3")
        .args(["-c", &py])
        .status()
        .expect("python3");
    assert!(st.success());
    let e = second_arg_is(&run, &m6);
    assert_eq!(args_of(&e)[0], "memtrue");
    assert_eq!(e["fileless"], true);
    // a deleted file too
    let gone = copy_true(dir.path(), "gone-true");
    let m7 = marker("deleted");
    let script = format!(
        "exec 3<{p}; rm {p}; exec /proc/self/fd/3 {m7}",
        p = gone.display()
    );
    // bash: `exec` of /proc/self/fd/3 (the open, deleted file)
    exec("bash", &["-c", &script]);
    let e = second_arg_is(&run, &m7);
    assert_eq!(e["fileless"], true);
    run.stop();
}

/// The exec whose only argument after argv[0] is `m` (not the command that started it).
fn second_arg_is(run: &Running, m: &str) -> Value {
    run.wait_event(
        WAIT,
        || {},
        |e| {
            let a = args_of(e);
            a.len() == 2 && a[1] == m
        },
    )
    .unwrap_or_else(|| panic!("no exec with argument {m}"))
}

#[test]
fn a_storm_of_short_processes_keeps_the_cache_bounded_and_parents_right() {
    let _storm = STORM.write().unwrap_or_else(|p| p.into_inner());
    let ig = Ig::new();
    let run = start_env(&ig, &["--parent"], &[("IG_STATS", "1")]);
    let m = marker("storm");
    let n = 20_000;
    let script = format!("i=0; while [ $i -lt {n} ]; do /bin/true {m}; i=$((i+1)); done");
    let started = Instant::now();
    let mut storm = Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .expect("storm");
    let storm_pid = storm.id();
    assert!(storm.wait().expect("wait").success());
    let storm_exec = run.wait_event(
        WAIT,
        || {},
        |e| e["pid"].as_u64() == Some(storm_pid as u64) && e.get("args").is_some(),
    );
    // The events of the storm, until they stop coming.
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let now = run
            .events()
            .iter()
            .filter(|e| args_of(e) == ["/bin/true", m.as_str()])
            .count();
        if now == n || (now == seen && now > 0 && started.elapsed() > Duration::from_secs(5)) {
            seen = now;
            break;
        }
        seen = now;
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, lines, stderr) = run.stop();
    assert!(status.success(), "ig: {stderr}");
    let events: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let storm_events: Vec<&Value> = events
        .iter()
        .filter(|e| args_of(e) == ["/bin/true", m.as_str()])
        .collect();
    let lost: u64 = stderr
        .lines()
        .filter_map(|l| {
            l.split("warning: ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        storm_events.len() as u64 + lost >= n as u64 && !storm_events.is_empty(),
        "{} events, {lost} lost, of {n}; stderr: {stderr}",
        storm_events.len()
    );
    let _ = seen;
    // Every child names the storm's shell as its parent (its image from /proc or its exec)
    for e in &storm_events {
        assert_eq!(e["ppid"].as_u64(), Some(storm_pid as u64));
        assert_eq!(e["parent"]["pid"].as_u64(), Some(storm_pid as u64), "{e}");
        if let Some(se) = &storm_exec {
            assert_eq!(e["parent_exec_id"], se["exec_id"], "{e}");
        }
    }
    let ids: std::collections::HashSet<&str> = storm_events
        .iter()
        .filter_map(|e| e["exec_id"].as_str())
        .collect();
    assert_eq!(ids.len(), storm_events.len(), "exec ids are unique");
    // IG_STATS: bounded
    let stats = stderr
        .lines()
        .find(|l| l.contains("process cache entries"))
        .unwrap_or_else(|| panic!("no process cache stats: {stderr}"));
    let num = |after: &str| -> u64 {
        stats
            .split(after)
            .nth(1)
            .and_then(|s| s.trim_start().split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{after} in {stats}"))
    };
    let entries = num("process cache entries");
    let capacity = num("(capacity");
    let evictions = num("evictions");
    assert!(entries <= capacity, "{stats}");
    assert!(capacity <= 8192, "{stats}");
    assert!(
        evictions > 0,
        "20,000 images went through a cache of {capacity}: {stats}"
    );
}

#[test]
fn the_daemon_carries_the_lineage_fields() {
    let _storm = beside_the_storm();
    let daemon = daemon_common::Daemon::start(&[]);
    let remote = daemon.remote();
    let ig = Ig::new();
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "120",
        "--parent",
        "--exits",
        "--remote",
        &remote,
    ]);
    let m = marker("remote");
    let e = run
        .wait_event(WAIT, || exec("/bin/true", &[&m]), |e| has_arg(e, &m))
        .unwrap_or_else(|| panic!("no remote event; stderr:\n{}", run.stderr_text()));
    assert!(e["exec_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(e["parent"]["pid"].as_u64(), Some(std::process::id() as u64));
    let pid = e["pid"].as_u64().expect("pid") as u32;
    let exit = exit_event(&run, pid);
    assert_eq!(exit["exec_id"], e["exec_id"]);
    assert_eq!(exit["exit_code"], 0);
    run.stop();
}

mod containers_common;

/// `runtime.containerStartedAt`, `containerPid` and `containerImageDigest`, and a parent from
/// the /proc scan inside a container (its shell started before ig).
#[test]
fn container_fields_as_in_the_seed() {
    let _storm = beside_the_storm();
    use containers_common::{run as sh, setup, unique, CtrContainer, DockerContainer};
    let sock = setup();
    let name = unique("lineage");
    let m = marker("incontainer");
    let script = format!("while :; do /bin/true {m}; sleep 0.2; done");
    let c = DockerContainer::run_script(&name, &script).expect("docker run");
    let ctr_id = unique("lineage-ctr");
    let ctr = CtrContainer::run(&sock, "default", &ctr_id, &[]).expect("ctr run");
    let ig = Ig::new();
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "-o",
        "json",
        "--timeout",
        "120",
        "--parent",
        "--containerd-socketpath",
        &sock,
    ]);
    let e = run
        .wait_event(
            WAIT,
            || {},
            |e| e["runtime"]["containerName"] == name.as_str() && has_arg(e, &m),
        )
        .unwrap_or_else(|| panic!("no event from {name}; stderr:\n{}", run.stderr_text()));
    let pid: u64 = c.pid().expect("pid") as u64;
    assert_eq!(e["runtime"]["containerPid"].as_u64(), Some(pid));
    let started = sh("docker", &["inspect", "-f", "{{.State.StartedAt}}", &c.id]).expect("inspect");
    let shown = e["runtime"]["containerStartedAt"]
        .as_str()
        .expect("startedAt");
    // Docker gives ns too; the same instant to the second at least.
    assert_eq!(shown.get(..19), started.get(..19), "{shown} vs {started}");
    // `docker import`ed: no registry digest
    assert_eq!(e["runtime"]["containerImageDigest"], "");
    // The container's shell started before ig: its image from the /proc scan
    assert_eq!(e["parent"]["pid"].as_u64(), Some(pid));
    assert_eq!(e["parent"]["args"][2], script.as_str());

    // containerd names the image's manifest digest; its start is its init process's
    ctr.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "lin",
        &ctr_id,
        "/bin/true",
        &m,
    ])
    .expect("exec");
    let e = run
        .wait_event(
            WAIT,
            || {},
            |e| e["runtime"]["containerId"] == ctr_id.as_str() && has_arg(e, &m),
        )
        .unwrap_or_else(|| panic!("no event from {ctr_id}; stderr:\n{}", run.stderr_text()));
    assert!(
        e["runtime"]["containerImageDigest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{e}"
    );
    assert!(e["runtime"]["containerStartedAt"]
        .as_str()
        .is_some_and(|t| t.starts_with("20")));
    run.stop();
}

/// The event whose args are exactly `args`.
fn exec_exact(run: &Running, args: &[&str]) -> Value {
    run.wait_event(WAIT, || {}, |e| args_of(e) == args)
        .unwrap_or_else(|| panic!("no exec event {args:?}; stderr:\n{}", run.stderr_text()))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_fork_that_never_execs_is_a_parent_with_the_shells_binary() {
    let _storm = beside_the_storm();
    let ig = Ig::new();
    let run = start(&ig, &["--parent", "--ancestors", "3"]);
    let (m1, m2) = (marker("forked1"), marker("forked2"));
    // The subshell is a fork of sh that runs `/bin/true M1` (its child), sleeps, then execs
    // `/bin/true M2` itself: it outlives its child's exec.
    let script = format!("(/bin/true {m1}; sleep 0.2; /bin/true {m2}) & wait");
    let mut sh = Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .expect("sh");
    assert!(sh.wait().expect("wait").success());

    let shell = exec_exact(&run, &["sh", "-c", &script]);
    let child = exec_exact(&run, &["/bin/true", &m1]);
    let subshell = exec_exact(&run, &["/bin/true", &m2]);
    let fork_pid = subshell["pid"].as_u64().expect("pid");
    // The child's parent is the fork (the subshell before its own exec), not sh.
    assert_eq!(child["parent"]["pid"].as_u64(), Some(fork_pid));
    assert_eq!(child["parent_exec_id"], child["parent"]["exec_id"]);
    let (_, key, pid) = decode(child["parent_exec_id"].as_str().expect("id"));
    assert_eq!(pid as u64, fork_pid);
    assert_eq!(key % 10_000_000, 0, "a fork's key is its start tick");
    assert_ne!(child["parent_exec_id"], shell["exec_id"]);
    // The fork runs sh's image: its binary and args.
    assert_eq!(child["parent"]["exepath"], shell["exepath"]);
    assert!(!shell["exepath"].as_str().unwrap_or("").is_empty());
    assert_eq!(
        strs(&child["parent"]["args"]),
        ["sh", "-c", script.as_str()]
    );
    // ... and its parent is sh.
    let ids = strs(&child["ancestors"]["exec_id"]);
    assert_eq!(
        ids.first(),
        child["parent_exec_id"].as_str().map(String::from).as_ref()
    );
    assert_eq!(
        ids.get(1),
        shell["exec_id"].as_str().map(String::from).as_ref()
    );
    // The subshell's own exec: its parent is sh (a clone that execs is sh's child).
    assert_eq!(subshell["parent_exec_id"], shell["exec_id"]);
    run.stop();
}

#[test]
fn a_child_whose_forking_parent_is_gone_still_gets_its_parent() {
    let _storm = beside_the_storm();
    let ig = Ig::new();
    let run = start(&ig, &["--parent", "--ancestors", "3"]);
    let m = marker("orphan");
    // The outer subshell forks the inner one and exits at once; the inner one, reparented,
    // sleeps and then execs `/bin/true M`.
    let script = format!("( (sleep 0.3; /bin/true {m}) & ) ; ");
    let mut sh = Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .expect("sh");
    assert!(sh.wait().expect("wait").success());

    let shell = exec_exact(&run, &["sh", "-c", &script]);
    let child = exec_exact(&run, &["/bin/true", &m]);
    let shell_pid = shell["pid"].as_u64().expect("pid");
    let middle = child["parent"]["pid"].as_u64().expect("parent.pid");
    assert_ne!(middle, shell_pid);
    assert_ne!(
        child["ppid"].as_u64(),
        Some(middle),
        "the middle process is gone"
    );
    // Full parent fields: the gone fork's id, sh's binary and args.
    let (_, key, pid) = decode(child["parent"]["exec_id"].as_str().expect("id"));
    assert_eq!(pid as u64, middle);
    assert_eq!(key % 10_000_000, 0);
    assert_eq!(child["parent"]["exepath"], shell["exepath"]);
    assert_eq!(
        strs(&child["parent"]["args"]),
        ["sh", "-c", script.as_str()]
    );
    assert_eq!(child["parent"]["comm"], "sh");
    let ids = strs(&child["ancestors"]["exec_id"]);
    assert_eq!(
        ids.get(1),
        shell["exec_id"].as_str().map(String::from).as_ref()
    );
    run.stop();
}

#[test]
fn exits_in_columns_print_each_header_once_before_the_rows() {
    let _storm = beside_the_storm();
    let ig = Ig::new();
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "--exits",
        "--timeout",
        "240",
        "--fields",
        "comm,pid,ppid",
    ]);
    let m = marker("colexit");
    let deadline = Instant::now() + WAIT;
    // The exec of `sh -c 'exit 4' M` and its exit: rows of both data sources.
    let mut pids = Vec::new();
    while Instant::now() < deadline {
        let mut c = Command::new("sh")
            .args(["-c", "exit 4", &m])
            .spawn()
            .expect("sh");
        pids.push(c.id().to_string());
        let _ = c.wait();
        let lines = run.lines();
        let rows_of_pid = |pid: &str| {
            lines
                .iter()
                .filter(|l| l.split_whitespace().nth(1) == Some(pid))
                .count()
        };
        if pids.iter().any(|p| rows_of_pid(p) >= 2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, lines, stderr) = run.stop();
    let headers: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("COMM"))
        .map(|(i, _)| i)
        .collect();
    // exec's header, then exit's, first and once each (the same fields: the same line).
    assert_eq!(
        headers,
        [0, 1],
        "stderr:\n{stderr}\nlines:\n{}",
        lines.join("\n")
    );
    for h in &lines[..2] {
        assert_eq!(
            h.split_whitespace().collect::<Vec<_>>(),
            ["COMM", "PID", "PPID"]
        );
    }
    assert!(
        pids.iter().any(|p| lines
            .iter()
            .filter(|l| l.split_whitespace().nth(1) == Some(p.as_str()))
            .count()
            >= 2),
        "an exec row and an exit row of one process; lines:\n{}",
        lines.join("\n")
    );
}
