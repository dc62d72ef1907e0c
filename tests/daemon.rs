//! `ig daemon` as a user runs it: remote runs print what local runs print, detached instances
//! survive restarts and are unloaded by `ig delete`, and bad input gets clear errors.

mod common;
mod containers_common;
mod daemon_common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use daemon_common::*;

/// How long a condition may take to come true (a loaded 2-core CI machine is slow to attach
/// two tracers); a passing test waits only as long as it needs.
const WAIT: Duration = Duration::from_secs(60);

fn find(run: &Running, needle: &str) -> Option<serde_json::Value> {
    run.wait_event(WAIT, || {}, |e| args_of(e).iter().any(|a| a == needle))
}

fn instances(d: &Daemon) -> Vec<serde_json::Value> {
    let o = d.ig(&["list", "-o", "json"]);
    assert!(o.status.success(), "ig list: {}", stderr_of(&o));
    serde_json::from_slice(&o.stdout).expect("ig list -o json")
}

fn instance<'a>(list: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    list.iter().find(|i| i["name"] == name)
}

/// Attaches to `name` until an event with `needle` in its args shows up.
fn attach_sees(d: &Daemon, name: &str, needle: &str) -> Result<serde_json::Value, String> {
    let run = d.spawn(&["attach", name, "-o", "json"]);
    match find(&run, needle) {
        Some(e) => Ok(e),
        None => Err(format!(
            "attach {name} never showed {needle}; stderr:\n{}",
            run.stderr_text()
        )),
    }
}

#[test]
fn remote_run_prints_what_a_local_run_prints() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let args = [
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "60",
    ];
    let local = Ig::new().spawn(&args);
    let remote = d.spawn(&args);
    local.wait_attached(WAIT);
    remote.wait_attached(WAIT);
    let m = marker("same");
    exec("/bin/true", &["x", "y", &m]);
    let l = find(&local, &m).expect("local run saw the exec");
    let r = find(&remote, &m).expect("remote run saw the exec");
    assert_eq!(args_of(&r), vec!["/bin/true", "x", "y", m.as_str()]);
    // The same exec, every field the same (pid, user, mount namespace …) but the time each
    // run's own BPF program read the clock.
    let without_clock = |e: &serde_json::Value| {
        let mut e = e.clone();
        // start_time: each run converts boot time to wall clock with its own offset
        for f in ["timestamp", "timestamp_raw", "start_time"] {
            e.as_object_mut().map(|o| o.remove(f));
        }
        e
    };
    assert_eq!(without_clock(&r), without_clock(&l));
    let ts = |e: &serde_json::Value| e["timestamp_raw"].as_u64().unwrap_or(0);
    assert!(ts(&r).abs_diff(ts(&l)) < 1_000_000_000, "{r} {l}");

    // Columns: the same header and the same line.
    let cols = [
        "run",
        "trace_exec",
        "--host",
        "--fields",
        "comm,pid,args",
        "--timeout",
        "60",
    ];
    let local = Ig::new().spawn(&cols);
    let remote = d.spawn(&cols);
    // One exec per marker until both runs show the same one (both tracers attached).
    let line_with = |run: &Running, m: &str| run.lines().into_iter().find(|l| l.contains(m));
    let mut sent: Vec<String> = Vec::new();
    let mut both = None;
    assert!(wait_until(WAIT, || {
        let m = marker("cols");
        exec("/bin/true", &[&m]);
        sent.push(m);
        both = sent
            .iter()
            .find(|m| line_with(&local, m).is_some() && line_with(&remote, m).is_some())
            .cloned();
        both.is_some()
    }));
    let m = both.expect("a marker both runs showed");
    assert_eq!(line_with(&remote, &m), line_with(&local, &m));
    assert_eq!(remote.lines().first(), local.lines().first(), "header");
    assert!(remote.lines()[0].contains("COMM"));
    let (status, _, err) = remote.stop();
    assert!(status.success(), "remote run exited with {status}: {err}");
}

/// The daemon sends a storm's events in batches (at most one every 40 ms): a burst still
/// reaches the client whole and in exec order, its tail too, and a lone exec after it comes
/// through on its own.
#[test]
fn a_burst_then_silence_reaches_the_client_whole_and_in_order() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let run = d.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "120",
    ]);
    run.wait_attached(WAIT);
    let tag = marker("burst");
    const N: usize = 600;
    let burst = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("i=0; while [ $i -lt {N} ]; do i=$((i+1)); /bin/true {tag}-$i; done"),
        ])
        .status()
        .expect("sh");
    assert!(burst.success());
    let seen = |run: &Running| -> Vec<usize> {
        run.events()
            .iter()
            .flat_map(args_of)
            .filter_map(|a| a.strip_prefix(&format!("{tag}-"))?.parse().ok())
            .collect()
    };
    assert!(
        wait_until(WAIT, || seen(&run).len() >= N),
        "{} of {N} burst execs arrived; stderr:\n{}",
        seen(&run).len(),
        run.stderr_text()
    );
    let got = seen(&run);
    assert_eq!(
        got,
        (1..=N).collect::<Vec<_>>(),
        "every exec once, in order"
    );

    // After the burst, a single exec still comes through on its own.
    let lone = marker("lone");
    exec("/bin/true", &[&lone]);
    assert!(find(&run, &lone).is_some(), "the lone exec never arrived");
    let (status, _, err) = run.stop();
    assert!(status.success(), "remote run exited with {status}: {err}");
}

#[test]
fn remote_run_stops_at_max_events_and_timeout() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let busy = std::process::Command::new("sh")
        .args(["-c", "for i in $(seq 200); do /bin/true; sleep 0.02; done"])
        .spawn()
        .expect("sh");
    let o = d.ig(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--max-events",
        "3",
        "--timeout",
        "30",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o).lines().count(), 3, "{}", stdout_of(&o));
    let started = std::time::Instant::now();
    let o = d.ig(&["run", "trace_exec", "--timeout", "1", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut busy = busy;
    let _ = busy.kill();
    let _ = busy.wait();
}

#[test]
fn remote_help_shows_the_images_params() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let o = d.ig(&["run", "trace_exec", "--help"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let help = stdout_of(&o);
    for flag in ["--paths", "--ignore-failed", "--remote", "--detach"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    let o = d.ig(&["run", "trace_exec", "--no-such-param"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("--no-such-param"));
}

#[test]
fn remote_run_selects_a_docker_container() {
    use containers_common::{setup, unique, DockerContainer};
    setup();
    let d = Daemon::start(&["--runtimes", "docker"]);
    let name = unique("daemon-c");
    let _container =
        DockerContainer::run_script(&name, "while true; do /bin/true tick; sleep 0.2; done")
            .expect("docker run");
    let remote = d.spawn(&[
        "run",
        "trace_exec",
        "-c",
        &name,
        "-o",
        "json",
        "--timeout",
        "60",
    ]);
    let host = marker("host");
    let e = remote
        .wait_event(
            WAIT,
            || exec("/bin/true", &[&host]),
            |e| args_of(e).contains(&"tick".to_string()),
        )
        .expect("an exec of the container");
    assert_eq!(e["runtime"]["containerName"], name.as_str());
    assert_eq!(e["runtime"]["runtimeName"], "docker");
    let events = remote.events();
    assert!(
        events
            .iter()
            .all(|e| e["runtime"]["containerName"] == name.as_str()),
        "only the container's events: {events:?}"
    );
    assert!(!events.iter().any(|e| args_of(e).contains(&host)));
}

#[test]
fn detached_instance_survives_a_restart_and_delete_unloads_it() {
    let mut d = Daemon::start(&["--runtimes", "none"]);
    let o = d.ig(&[
        "run",
        "trace_exec",
        "--detach",
        "--name",
        "execs",
        "--tags",
        "a,b",
        "--host",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let id = stdout_of(&o).trim().to_string();
    assert_eq!(id.len(), 32, "an id: {id:?}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));

    let list = instances(&d);
    let i = instance(&list, "execs").expect("listed");
    assert_eq!(i["status"], "Running");
    assert_eq!(i["id"], id.as_str());
    assert_eq!(i["tags"], serde_json::json!(["a", "b"]));
    let o = d.ig(&["list"]);
    let table = stdout_of(&o);
    assert!(table.lines().next().unwrap_or("").contains("ID"));
    assert!(table.contains("execs") && table.contains("trace_exec") && table.contains("Running"));

    let m = marker("detached");
    exec("/bin/true", &[&m]);
    attach_sees(&d, "execs", &m).unwrap();
    // By id prefix too, and show tells the counters.
    let o = d.ig(&["show", &id[..8], "-o", "json"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).expect("show json");
    assert_eq!(shown["name"], "execs");
    assert!(shown["events"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(shown["spec"]["host"], true);
    let yaml = stdout_of(&d.ig(&["show", "execs"]));
    assert!(
        yaml.contains("name: execs") && yaml.contains("status: Running"),
        "{yaml}"
    );

    // SIGTERM: exit 0, programs detached; the instance comes back on the next start.
    let pid = d.pid();
    assert!(bpf_objects_of("prog", pid) > 0);
    let (status, log) = d.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "daemon exited with {status}: {log}");
    d.restart();
    // Resumed in the background: Starting, then Running once its programs are attached.
    let mut status = serde_json::Value::Null;
    assert!(
        wait_until(WAIT, || {
            status = instance(&instances(&d), "execs").expect("resumed")["status"].clone();
            status == "Running"
        }),
        "{status}"
    );
    let m2 = marker("after-restart");
    exec("/bin/true", &[&m2]);
    attach_sees(&d, "execs", &m2).unwrap();

    let pid = d.pid();
    let progs = bpf_ids_of("prog", pid);
    let links = bpf_ids_of("link", pid);
    assert!(
        !progs.is_empty() && !links.is_empty(),
        "{progs:?} {links:?}"
    );
    let o = d.ig(&["delete", "execs"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(instance(&instances(&d), "execs").is_none());
    assert_eq!(
        bpf_objects_of("prog", pid),
        0,
        "programs the daemon holds after delete"
    );
    assert_eq!(
        bpf_objects_of("link", pid),
        0,
        "links the daemon holds after delete"
    );
    // Nothing else holds them: the kernel frees them (asynchronously).
    assert!(
        wait_until(WAIT, || {
            let (p, l) = (bpf_ids("prog"), bpf_ids("link"));
            !progs.iter().any(|i| p.contains(i)) && !links.iter().any(|i| l.contains(i))
        }),
        "programs {progs:?} or links {links:?} still loaded"
    );
    let o = d.ig(&["attach", "execs"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("no instance named \"execs\""),
        "{}",
        stderr_of(&o)
    );
    // Deleted for good: not resumed by the next start.
    d.signal_and_wait(libc::SIGTERM);
    d.restart();
    assert!(instance(&instances(&d), "execs").is_none());
}

#[test]
fn an_instance_whose_image_is_gone_comes_back_as_error() {
    let mut d = Daemon::start(&["--runtimes", "none"]);
    // A copy of trace_exec under a name of its own (an unsigned image: verification off).
    let tagged = "127.0.0.1:1/mine/trace_exec:v1";
    let o = d.store_cmd(&["image", "tag", "trace_exec", tagged]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let o = d.ig(&[
        "run",
        tagged,
        "--verify-image=false",
        "--detach",
        "--name",
        "mine",
        "--host",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    // Verification stays on for the next instance of an unsigned image.
    let o = d.ig(&["run", tagged, "--detach", "--name", "signed-only", "--host"]);
    assert!(!o.status.success());
    assert!(!stderr_of(&o).is_empty());
    d.signal_and_wait(libc::SIGTERM);
    let o = d.store_cmd(&["image", "remove", tagged]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    d.restart();
    let mut inst = serde_json::Value::Null;
    assert!(
        wait_until(WAIT, || {
            inst = instance(&instances(&d), "mine")
                .cloned()
                .unwrap_or_default();
            inst["status"] == "Error"
        }),
        "{inst}"
    );
    let reason = inst["error"].as_str().unwrap_or("");
    assert!(reason.contains("not in the local store"), "{reason}");
    let table = stdout_of(&d.ig(&["list"]));
    assert!(table.contains("Error"), "{table}");
    let o = d.ig(&["attach", "mine"]);
    assert!(!o.status.success());
    assert!(stderr_of(&o).contains("not running"), "{}", stderr_of(&o));
    let o = d.ig(&["delete", "mine"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
}

#[test]
fn bad_input_gets_clear_errors() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let fails = |args: &[&str], needle: &str| {
        let o = d.ig(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            stderr_of(&o).contains(needle),
            "{args:?}: {needle:?} not in {}",
            stderr_of(&o)
        );
    };
    fails(&["attach", "nope"], "no instance named \"nope\"");
    fails(&["show", "nope"], "no instance named \"nope\"");
    fails(&["delete", "nope"], "no instance named \"nope\"");
    fails(
        &["run", "trace_exec", "--detach", "--host"],
        "--detach needs --name",
    );
    fails(
        &["run", "trace_exec", "--detach", "--name", "bad name"],
        "invalid instance name",
    );
    fails(
        &["run", "127.0.0.1:1/none/such:v1", "--pull", "never"],
        "not in the local store",
    );
    fails(
        &["run", "127.0.0.1:1/none/such:v1", "--detach", "--name", "x"],
        "not in the local store and pulling it failed",
    );
    let o = d.ig(&["run", "trace_exec", "--detach", "--name", "dup", "--host"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    fails(
        &["run", "trace_exec", "--detach", "--name", "dup", "--host"],
        "exists already",
    );
    fails(
        &["run", "trace_exec", "--remote", "tcp://nowhere"],
        "invalid daemon address",
    );
    let o = Ig::new().output(&[
        "list",
        "--remote",
        &format!("unix://{}/absent.sock", d.dir.path().display()),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("no ig daemon answers"),
        "{}",
        stderr_of(&o)
    );
    // A failed create leaves nothing behind.
    let names: Vec<_> = instances(&d).iter().map(|i| i["name"].clone()).collect();
    assert_eq!(names, vec![serde_json::json!("dup")]);
}

#[test]
fn output_file_rotates_without_losing_lines() {
    let d = Daemon::start(&["--runtimes", "none"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("execs.json");
    let o = d.ig(&[
        "run",
        "trace_exec",
        "--detach",
        "--name",
        "tofile",
        "--host",
        "--output-file",
        &path_str(&file),
        "--output-max-size",
        "1",
        "--output-max-backups",
        "9",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let m = marker("file");
    // ~650 bytes a line: 3000 lines are about 2 MiB, at least one rotation.
    let status = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("for i in $(seq 3000); do /bin/true {m} $i; done"),
        ])
        .status()
        .expect("sh");
    assert!(status.success());
    let count = || {
        let mut lines = 0;
        for entry in std::fs::read_dir(dir.path()).expect("dir").flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            assert!(
                entry.metadata().map(|m| m.len()).unwrap_or(0) <= 1 << 20,
                "{} over 1 MiB",
                entry.path().display()
            );
            for l in text.lines() {
                let e: serde_json::Value = serde_json::from_str(l).expect("whole JSON lines");
                if args_of(&e).contains(&m) {
                    lines += 1;
                }
            }
        }
        lines
    };
    assert!(
        wait_until(WAIT, || count() >= 3000),
        "{} of 3000 lines",
        count()
    );
    assert_eq!(count(), 3000);
    assert!(dir.path().join("execs.json.1").exists());
    let list = instances(&d);
    assert_eq!(instance(&list, "tofile").expect("listed")["lost"], 0);
}

#[test]
fn metrics_tell_instances_and_events() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start(&["--runtimes", "none", "--metrics-address", &addr]);
    let o = d.ig(&[
        "run",
        "trace_exec",
        "--detach",
        "--name",
        "counted",
        "--host",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    for _ in 0..5 {
        exec("/bin/true", &[]);
    }
    let scrape = || {
        let mut s = std::net::TcpStream::connect(&addr).expect("metrics port");
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read");
        text
    };
    let mut text = String::new();
    assert!(
        wait_until(WAIT, || {
            text = scrape();
            text.lines().any(|l| {
                l.starts_with("ig_instance_events_total{")
                    && l.contains("instance=\"counted\"")
                    && l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()) >= Some(5)
            })
        }),
        "{text}"
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("ig_instances{status=\"Running\"} 1"),
        "{text}"
    );
    assert!(text.contains("ig_instance_lost_events_total{"), "{text}");
    assert!(text.contains("ig_containers 0"), "{text}");
}

#[test]
fn remote_ctrl_c_stops_the_run_and_prints_what_it_had() {
    use containers_common::{setup, unique, IMAGE};
    setup();
    let d = Daemon::start(&["--runtimes", "docker"]);
    // A flight recorder: its history is written only when the run stops.
    let name = unique("daemon-traceloop");
    let run = d.spawn(&["run", "traceloop", "-c", &name, "--timeout", "60"]);
    assert!(
        wait_until(WAIT, || run.stderr_text().contains("recording syscalls")),
        "{}",
        run.stderr_text()
    );
    let m = marker("traceloop");
    let script = format!("cat /nonexistent/{m}; true");
    let o = std::process::Command::new("docker")
        .args(["run", "--rm", "--name", &name, IMAGE, "sh", "-c", &script])
        .output()
        .expect("docker run");
    assert!(o.status.success(), "{}", stderr_of(&o));
    std::thread::sleep(Duration::from_millis(500));
    let (status, lines, err) = run.stop();
    assert!(status.success(), "exited with {status}: {err}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("# traceloop of container {name} (docker"))),
        "{lines:?} {err}"
    );
    assert!(
        lines.iter().any(|l| l.contains("open") && l.contains(&m)),
        "the history has the open of /nonexistent/{m}: {lines:?}"
    );

    // A streaming gadget: what came before Ctrl-C is printed, the exit is clean.
    let run = d.spawn(&["run", "trace_exec", "--host", "-o", "json"]);
    run.wait_attached(WAIT);
    let m = marker("ctrl-c");
    exec("/bin/true", &[&m]);
    find(&run, &m).expect("the exec before Ctrl-C");
    let (status, _, err) = run.stop();
    assert!(status.success(), "exited with {status}: {err}");
}
