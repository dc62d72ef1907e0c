//! `ig daemon` under stress: killed with SIGKILL (the kernel frees its BPF objects, a restart
//! resumes its instances), and 20 instances with an exec storm and a client that stopped
//! reading (it alone misses events; the others and the API stay responsive).

mod common;
mod daemon_common;
use common::*;
use daemon_common::*;

use std::collections::BTreeSet;
use std::process::Output;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The tests here count the machine's BPF objects and load its CPUs: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn client(d: &Daemon, args: &[&str]) -> Output {
    let o = output_within(&mut d.cmd(args), Duration::from_secs(60));
    assert!(o.status.success(), "ig {args:?}: {}", stderr_of(&o));
    o
}

/// `ig run trace_exec --detach --name NAME --host`; its id.
fn create(d: &Daemon, name: &str) -> String {
    let o = client(
        d,
        &["run", "trace_exec", "--detach", "--name", name, "--host"],
    );
    let id = stdout_of(&o).trim().to_string();
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "--detach should print a 32-hex id, printed {id:?}"
    );
    id
}

fn list(d: &Daemon) -> Vec<serde_json::Value> {
    let o = client(d, &["list", "-o", "json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(&o)))
}

fn show(d: &Daemon, name: &str) -> serde_json::Value {
    let o = client(d, &["show", name, "-o", "json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout_of(&o)))
}

fn counter(v: &serde_json::Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

/// The BPF program and link ids whose file descriptors process `pid` holds.
fn held_by(pid: u32) -> (BTreeSet<u64>, BTreeSet<u64>) {
    (
        bpf_ids_of("prog", pid).into_iter().collect(),
        bpf_ids_of("link", pid).into_iter().collect(),
    )
}

/// Program and link ids some live process holds.
fn held_by_anyone() -> (BTreeSet<u64>, BTreeSet<u64>) {
    let (mut progs, mut links) = (BTreeSet::new(), BTreeSet::new());
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            let (p, l) = held_by(pid);
            progs.extend(p);
            links.extend(l);
        }
    }
    (progs, links)
}

fn ids(kind: &str) -> BTreeSet<u64> {
    bpf_ids(kind).into_iter().collect()
}

#[test]
fn kill_9_frees_every_bpf_object_and_a_restart_resumes_the_instances() {
    let _serial = serial();
    let (progs_before, links_before) = (ids("prog"), ids("link"));
    let mut d = Daemon::start(&["--runtimes", "none"]);
    let pid = d.pid();
    let id1 = create(&d, "x1");
    let id2 = create(&d, "x2");
    assert_ne!(id1, id2);

    // Both instances attached: the daemon holds programs and links.
    let mut held = (BTreeSet::new(), BTreeSet::new());
    let attached = wait_until(Duration::from_secs(20), || {
        held = held_by(pid);
        held.0.len() >= 2 && held.1.len() >= 2
    });
    assert!(
        attached,
        "the daemon holds programs {:?} and links {:?}",
        held.0, held.1
    );
    let (progs_running, links_running) = (ids("prog"), ids("link"));
    let new_progs: BTreeSet<u64> = progs_running.difference(&progs_before).copied().collect();
    let new_links: BTreeSet<u64> = links_running.difference(&links_before).copied().collect();
    assert!(held.0.is_subset(&new_progs), "{:?} ⊄ {new_progs:?}", held.0);
    assert!(held.1.is_subset(&new_links), "{:?} ⊄ {new_links:?}", held.1);
    assert!(bpf_objects_of("prog", pid) > 0);
    assert!(bpf_objects_of("link", pid) > 0);
    eprintln!(
        "daemon {pid}: {} programs, {} links (new on the machine: {} programs, {} links)",
        held.0.len(),
        held.1.len(),
        new_progs.len(),
        new_links.len()
    );

    let (status, _) = d.signal_and_wait(libc::SIGKILL);
    assert!(!status.success());
    let killed = Instant::now();

    // Every program and link that appeared since the daemon started goes away (the kernel
    // frees them asynchronously), except what some other live process holds.
    let mut left = (BTreeSet::new(), BTreeSet::new());
    let freed = wait_until(Duration::from_secs(15), || {
        let now = (ids("prog"), ids("link"));
        let mut progs: BTreeSet<u64> = new_progs.intersection(&now.0).copied().collect();
        let mut links: BTreeSet<u64> = new_links.intersection(&now.1).copied().collect();
        // Whatever the daemon held must go, whoever else runs.
        let mine =
            progs.iter().any(|p| held.0.contains(p)) || links.iter().any(|l| held.1.contains(l));
        if !mine && (!progs.is_empty() || !links.is_empty()) {
            let others = held_by_anyone();
            progs.retain(|p| !others.0.contains(p));
            links.retain(|l| !others.1.contains(l));
        }
        left = (progs, links);
        left.0.is_empty() && left.1.is_empty()
    });
    assert!(
        freed,
        "after SIGKILL these programs {:?} and links {:?} remain",
        left.0, left.1
    );
    eprintln!("BPF objects freed {:?} after SIGKILL", killed.elapsed());

    d.restart();
    let mut instances = Vec::new();
    let resumed = wait_until(Duration::from_secs(20), || {
        instances = list(&d);
        ["x1", "x2"].iter().all(|name| {
            instances
                .iter()
                .any(|i| i["name"] == *name && i["status"] == "Running")
        })
    });
    assert!(resumed, "after a restart: {instances:?}");
    assert_eq!(instances.len(), 2, "{instances:?}");
    for (name, id) in [("x1", &id1), ("x2", &id2)] {
        let i = instances
            .iter()
            .find(|i| i["name"] == name)
            .expect("listed");
        assert_eq!(i["id"], id.as_str(), "{name} keeps its id");
    }
    let pid = d.pid();
    assert!(
        wait_until(Duration::from_secs(10), || held_by(pid).0.len() >= 2),
        "the restarted daemon holds no programs"
    );

    // And they really trace again.
    let m = marker("resumed");
    let att = d.spawn(&["attach", "x1", "-o", "json"]);
    let seen = att.wait_event(
        Duration::from_secs(20),
        || exec("/bin/true", &[&m]),
        |e| args_of(e).contains(&m),
    );
    assert!(
        seen.is_some(),
        "x1 after the restart saw no exec; stderr: {}",
        att.stderr_text()
    );
    let (status, _, err) = att.stop();
    assert!(status.success(), "attach: {err}");
}

/// Finds an event whose args contain `m` among the lines of `r` after `*from` (and moves
/// `*from` past what was searched: storms print many lines).
fn find_marker(r: &Running, m: &str, from: &mut usize) -> Option<serde_json::Value> {
    let lines = r.stdout.lock().expect("lock");
    let found = lines[*from..]
        .iter()
        .filter(|l| l.contains(m))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| args_of(e).iter().any(|a| a == m));
    *from = lines.len();
    found
}

fn signal(r: &Running, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(r.child.id() as i32, sig) };
}

const INSTANCES: usize = 20;
/// Execs at most, waiting for the stopped client to miss events.
const STORM_MAX_EXECS: u64 = 80_000;
const STORM_MAX_TIME: Duration = Duration::from_secs(80);

#[test]
fn twenty_instances_see_every_exec_and_a_stopped_client_misses_only_its_own_events() {
    let _serial = serial();
    let started = Instant::now();
    let d = Daemon::start(&["--runtimes", "none"]);
    let names: Vec<String> = (0..INSTANCES).map(|i| format!("i{i:02}")).collect();

    // Create all at once.
    let ids: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = names.iter().map(|n| s.spawn(|| create(&d, n))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("create"))
            .collect()
    });
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        INSTANCES,
        "distinct ids"
    );
    let mut all = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            all = list(&d);
            all.len() == INSTANCES && all.iter().all(|i| i["status"] == "Running")
        }),
        "20 running instances: {all:?}"
    );
    eprintln!(
        "{INSTANCES} instances running after {:?}",
        started.elapsed()
    );

    // Every instance sees one exec.
    let m = marker("each");
    let attaches: Vec<Running> = names
        .iter()
        .map(|n| d.spawn(&["attach", n, "-o", "json"]))
        .collect();
    let mut from = [0; INSTANCES];
    let mut seen = [false; INSTANCES];
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.iter().any(|s| !s) && Instant::now() < deadline {
        exec("/bin/true", &[&m]);
        thread::sleep(Duration::from_millis(500));
        for (i, a) in attaches.iter().enumerate() {
            seen[i] = seen[i] || find_marker(a, &m, &mut from[i]).is_some();
        }
    }
    let blind: Vec<String> = names
        .iter()
        .zip(&attaches)
        .zip(&seen)
        .filter(|(_, s)| !**s)
        .map(|((n, a), _)| format!("{n}: {}", a.stderr_text()))
        .collect();
    assert!(blind.is_empty(), "instances that missed {m}: {blind:#?}");
    for a in attaches {
        let (status, _, err) = a.stop();
        assert!(status.success(), "attach after SIGINT: {status}; {err}");
    }
    eprintln!(
        "all {INSTANCES} saw the marker after {:?}",
        started.elapsed()
    );

    // A client of i00 that stops reading, and one of i01 that keeps reading.
    let slow = d.spawn(&["attach", &names[0], "-o", "json"]);
    let fast = d.spawn(&["attach", &names[1], "-o", "json"]);
    for r in [&slow, &fast] {
        assert!(
            wait_until(Duration::from_secs(20), || r
                .stderr_text()
                .contains("live events follow")),
            "attach did not start: {}",
            r.stderr_text()
        );
    }
    signal(&slow, libc::SIGSTOP);
    let before = show(&d, &names[0]);
    let events_before = counter(&before, "events");

    let storm = Storm::start(2);
    let storm_started = Instant::now();
    thread::sleep(Duration::from_secs(3));

    // Under the storm: the reading client gets a fresh exec promptly…
    let m2 = marker("storm");
    let mut fast_from = 0;
    let t = Instant::now();
    let mut fresh = None;
    while fresh.is_none() && t.elapsed() < Duration::from_secs(15) {
        exec("/bin/true", &[&m2]);
        thread::sleep(Duration::from_millis(100));
        fresh = find_marker(&fast, &m2, &mut fast_from);
    }
    let marker_latency = t.elapsed();
    assert!(
        fresh.is_some(),
        "i01's client did not get {m2} within 15 s of the storm; stderr: {}",
        fast.stderr_text()
    );
    // …and the API answers.
    let t = Instant::now();
    let listed = list(&d);
    let list_latency = t.elapsed();
    assert_eq!(listed.len(), INSTANCES);
    assert!(
        list_latency < Duration::from_secs(3),
        "ig list took {list_latency:?} under the storm"
    );
    eprintln!(
        "under the storm ({} execs so far): marker seen by i01's client in {marker_latency:?}, ig list in {list_latency:?}",
        storm.execs()
    );

    // The stopped client ends up missing events.
    let mut missed_at = None;
    let mut last = before.clone();
    while storm.execs() < STORM_MAX_EXECS && storm_started.elapsed() < STORM_MAX_TIME {
        thread::sleep(Duration::from_millis(500));
        last = show(&d, &names[0]);
        if counter(&last, "missed_by_clients") > 0 {
            missed_at = Some((
                storm.execs(),
                counter(&last, "events") - events_before,
                storm_started.elapsed(),
            ));
            break;
        }
    }
    // A little more, so the client has missed more than one batch.
    thread::sleep(Duration::from_millis(500));
    let execs = storm.stop();
    let storm_time = storm_started.elapsed();
    let (execs_at_miss, events_at_miss, time_at_miss) = missed_at.unwrap_or_else(|| {
        panic!("the stopped client missed nothing after {execs} execs in {storm_time:?}: {last}")
    });
    eprintln!(
        "storm: {execs} execs in {storm_time:?} ({:.0}/s); the stopped client started missing after {execs_at_miss} execs, {events_at_miss} events of i00, {time_at_miss:?}",
        execs as f64 / storm_time.as_secs_f64()
    );

    // Woken up, it drains its queue, is told how many it missed, and gets live events again.
    signal(&slow, libc::SIGCONT);
    let m3 = marker("after");
    let mut slow_from = 0;
    let t = Instant::now();
    let mut caught_up = None;
    while caught_up.is_none() && t.elapsed() < Duration::from_secs(40) {
        exec("/bin/true", &[&m3]);
        thread::sleep(Duration::from_millis(250));
        caught_up = find_marker(&slow, &m3, &mut slow_from);
    }
    assert!(
        caught_up.is_some(),
        "the woken client never got {m3}; stderr: {}",
        slow.stderr_text()
    );
    let drain_time = t.elapsed();
    let err = slow.stderr_text();
    let told = missed_warnings(&err);
    assert!(
        told.iter().sum::<u64>() > 0,
        "the woken client was not told it missed events; stderr: {err}"
    );
    assert!(err.contains("this client read too slowly"), "stderr: {err}");

    let stats = list(&d);
    let by_name = |n: &str| {
        stats
            .iter()
            .find(|i| i["name"] == n)
            .unwrap_or_else(|| panic!("{n} not listed: {stats:?}"))
    };
    let i00 = by_name(&names[0]);
    let missed = counter(i00, "missed_by_clients");
    assert!(missed > 0, "{i00}");
    assert_eq!(
        told.iter().sum::<u64>(),
        missed,
        "the client is told exactly what the daemon counts as missed ({told:?}): {i00}"
    );
    let printed = slow.lines().len();
    let mut report = Vec::new();
    for n in &names {
        let i = by_name(n);
        assert_eq!(i["status"], "Running", "{i}");
        if n != &names[0] {
            assert_eq!(counter(i, "missed_by_clients"), 0, "{i}");
        }
        report.push(format!(
            "{n}: events {} lost {} missed_by_clients {}",
            counter(i, "events"),
            counter(i, "lost"),
            counter(i, "missed_by_clients")
        ));
    }
    eprintln!(
        "woken client: told {told:?} missed, printed {printed} lines, caught up in {drain_time:?}\n{}",
        report.join("\n")
    );
    let lost: Vec<&String> = report.iter().filter(|r| !r.contains(" lost 0 ")).collect();
    assert!(lost.is_empty(), "the kernel lost events: {lost:#?}");

    for r in [slow, fast] {
        let (status, _, err) = r.stop();
        assert!(status.success(), "attach after SIGINT: {status}; {err}");
    }
    eprintln!("done after {:?}", started.elapsed());
}
