//! BPF-iterator gadgets (GADGET_ITER, iter/task): the built-in snapshot_process with a real
//! Docker container, and a task-iterator test gadget built with `ig image build`.

mod common;
mod containers_common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use containers_common::{setup, unique, DockerContainer};

const GADGET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/task_iter");

/// The one JSON array a snapshot prints.
fn snapshot(ig: &Ig, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["run", "snapshot_process", "-o", "json", "--timeout", "120"];
    all.extend_from_slice(args);
    let out = ig.output(&all);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one array: {text}");
    serde_json::from_str::<serde_json::Value>(lines[0])
        .expect("JSON")
        .as_array()
        .cloned()
        .expect("an array")
}

fn pids(rows: &[serde_json::Value]) -> Vec<u64> {
    rows.iter().filter_map(|r| r["pid"].as_u64()).collect()
}

/// A busybox container whose processes are `sh` and two `sleep`s, once both sleeps run.
fn container_with_two_sleeps(name: &str) -> DockerContainer {
    let c =
        DockerContainer::run_script(name, "sleep 1001 & sleep 1002 & wait").expect("docker run");
    let pid = c.pid().expect("pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if children.split_whitespace().count() >= 2 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    c
}

#[test]
fn lists_a_containers_processes_and_not_the_hosts() {
    setup();
    let name = unique("snap-proc");
    let c = container_with_two_sleeps(&name);
    let init = c.pid().expect("pid") as u64;
    let ig = Ig::new();
    let rows = snapshot(&ig, &["-c", &name]);
    let mut comms: Vec<&str> = rows.iter().filter_map(|r| r["comm"].as_str()).collect();
    comms.sort();
    assert_eq!(comms, ["sh", "sleep", "sleep"], "{rows:?}");
    for r in &rows {
        assert_eq!(r["runtime"]["containerName"].as_str(), Some(name.as_str()));
        assert_eq!(r["runtime"]["runtimeName"].as_str(), Some("docker"));
    }
    let sh = rows.iter().find(|r| r["comm"] == "sh").expect("sh");
    assert_eq!(sh["pid"].as_u64(), Some(init));
    for sleep in rows.iter().filter(|r| r["comm"] == "sleep") {
        assert_eq!(sleep["ppid"].as_u64(), Some(init), "{sleep}");
        assert_eq!(sleep["user"].as_str(), Some("root"), "{sleep}");
    }
    assert!(!pids(&rows).contains(&(std::process::id() as u64)));

    // --host: the host's processes (ours among them) too, outside any container.
    let rows = snapshot(&ig, &["--host"]);
    let me = rows
        .iter()
        .find(|r| r["pid"].as_u64() == Some(std::process::id() as u64))
        .expect("this test's process");
    assert_eq!(me["runtime"]["containerName"].as_str(), Some(""), "{me}");
    assert!(pids(&rows).contains(&init), "the container's too");

    // Without -c or --host: every container's, no host process.
    let rows = snapshot(&ig, &[]);
    assert!(pids(&rows).contains(&init));
    assert!(!pids(&rows).contains(&(std::process::id() as u64)));
}

#[test]
fn sort_max_entries_filter_and_threads() {
    let ig = Ig::new();
    let rows = snapshot(&ig, &["--host", "--sort", "-pid"]);
    let p = pids(&rows);
    assert!(p.len() > 5, "{p:?}");
    assert!(p.windows(2).all(|w| w[0] > w[1]), "descending: {p:?}");

    let rows = snapshot(&ig, &["--host", "--sort", "pid", "--max-entries", "3"]);
    let p = pids(&rows);
    assert_eq!(p.len(), 3, "{p:?}");
    // The smallest pids of the machine (1 or 2 and the first kernel threads).
    assert!(p[0] <= 2, "{p:?}");
    assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");

    // --filter applies to rows.
    let me = std::process::id();
    let rows = snapshot(&ig, &["--host", "-F", &format!("pid=={me}")]);
    assert_eq!(pids(&rows), [me as u64]);

    // Threads only with --threads: this test binary runs several.
    let threads = snapshot(&ig, &["--host", "--threads", "-F", &format!("pid=={me}")]);
    assert!(threads.len() > 1, "{threads:?}");
    assert!(threads.iter().any(|r| r["tid"].as_u64() != Some(me as u64)));

    // Columns: a table (header, rows), nothing else.
    let out = ig.output(&["run", "snapshot_process", "--host", "--max-entries", "2"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("COMM") && lines[0].contains("PPID"),
        "{text}"
    );
}

#[test]
fn bad_sort_field_is_refused_before_anything_loads() {
    let ig = Ig::new();
    let out = ig.output(&["run", "snapshot_process", "--host", "--sort", "pid,-bogus"]);
    assert_clean_failure(&out, "--sort: unknown field \"bogus\"");
    assert!(stdout_of(&out).is_empty());
    let out = ig.output(&["run", "snapshot_process", "--host", "-F", "nosuch==1"]);
    assert_clean_failure(&out, "nosuch");
}

#[test]
fn a_task_iterator_gadget_builds_and_its_fields_are_decoded() {
    let ig = Ig::new();
    let out = build(&ig, Path::new(GADGET), "task_iter:test");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let me = std::process::id().to_string();
    let out = ig.output(&[
        "run",
        "task_iter:test",
        "--verify-image=false",
        "--host",
        "-o",
        "json",
        "--only-pid",
        &me,
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let rows: Vec<serde_json::Value> = serde_json::from_str(text.trim()).expect("one JSON array");
    assert!(!rows.is_empty(), "{text}");
    for r in &rows {
        assert_eq!(r["pid"].as_u64(), Some(me.parse().expect("pid")), "{r}");
        // A nested struct's fields are `creds.uid`, `creds.gid`.
        assert_eq!(r["creds"]["uid"].as_u64(), Some(0), "{r}");
        assert_eq!(r["creds"]["gid"].as_u64(), Some(0), "{r}");
        assert!(r["nr_threads"].as_u64().unwrap_or(0) >= 1, "{r}");
    }
    // Every thread is a task of its own: the main one's tid is the pid.
    assert!(rows
        .iter()
        .any(|r| r["tid"].as_str().is_none() && r["tid"] == r["pid"]));
    let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).expect("comm");
    assert!(rows.iter().any(|r| r["comm"].as_str() == Some(comm.trim())));
}

/// `iter/tcp` lists the sockets of the namespace it is read in: ig reads it in each selected
/// container's network namespace (setns in a reading thread), and in the host's with --host.
#[test]
fn a_socket_iterator_is_read_in_the_containers_network_namespace() {
    setup();
    let ig = Ig::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/tcp_iter");
    let out = build(&ig, Path::new(dir), "tcp_iter:test");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let name = unique("snap-tcp");
    const PORT: u64 = 34567;
    let c = DockerContainer::run_script(&name, &format!("nc -l -p {PORT}")).expect("docker run");
    let pid = c.pid().expect("pid");
    let netns = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .expect("netns")
            .ino()
    };
    // A host listener, which -c NAME must not show.
    let host = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let host_port = host.local_addr().expect("addr").port() as u64;
    let read = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["run", "tcp_iter:test", "--verify-image=false", "-o", "json"];
        all.extend_from_slice(args);
        let out = ig.output(&all);
        assert!(out.status.success(), "{}", stderr_of(&out));
        serde_json::from_str(stdout_of(&out).trim()).expect("one JSON array")
    };
    let ports = |rows: &[serde_json::Value]| -> Vec<u64> {
        rows.iter().filter_map(|r| r["sport"].as_u64()).collect()
    };
    // nc may take a moment to listen.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rows = read(&["-c", &name]);
    while !ports(&rows).contains(&PORT) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        rows = read(&["-c", &name]);
    }
    let listen = rows
        .iter()
        .find(|r| r["sport"].as_u64() == Some(PORT))
        .unwrap_or_else(|| panic!("the container's listener: {rows:?}"));
    assert_eq!(listen["state"].as_u64(), Some(10), "TCP_LISTEN: {listen}");
    assert_eq!(listen["netns_id"].as_u64(), Some(netns), "{listen}");
    assert!(!ports(&rows).contains(&host_port), "{rows:?}");
    // Socket rows have no mount namespace: they are enriched by the network namespace they
    // were read in, the container's.
    for r in &rows {
        assert_eq!(
            r["runtime"]["containerName"].as_str(),
            Some(name.as_str()),
            "{r}"
        );
        assert_eq!(r["runtime"]["runtimeName"].as_str(), Some("docker"), "{r}");
        assert_eq!(
            r["runtime"]["containerPid"].as_u64(),
            Some(pid as u64),
            "{r}"
        );
    }

    let rows = read(&["--host"]);
    let row_of = |port: u64| {
        rows.iter()
            .find(|r| r["sport"].as_u64() == Some(port))
            .unwrap_or_else(|| panic!("port {port}: {rows:?}"))
            .clone()
    };
    assert_eq!(
        row_of(host_port)["runtime"]["containerName"].as_str(),
        Some(""),
        "the host's listener is in no container"
    );
    assert_eq!(
        row_of(PORT)["runtime"]["containerName"].as_str(),
        Some(name.as_str()),
        "containers too"
    );
    // The enriched fields filter and show like any other.
    let filtered = read(&["--host", "-F", &format!("runtime.containerName=={name}")]);
    assert!(ports(&filtered).contains(&PORT), "{filtered:?}");
    assert!(!ports(&filtered).contains(&host_port), "{filtered:?}");
    let out = ig.output(&["run", "tcp_iter:test", "--verify-image=false", "-c", &name]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.lines()
            .next()
            .unwrap_or("")
            .contains("RUNTIME.CONTAINERNAME"),
        "{text}"
    );
    assert!(text.contains(&name[..name.len().min(20)]), "{text}");

    // A container sharing the first one's network namespace: read with `-c` it, its rows are
    // its own (the namespace's sockets, named after the container asked for).
    let peer = unique("snap-tcp-peer");
    let _p = DockerContainer::run(&peer, &["--network", &format!("container:{name}")])
        .expect("docker run --network container:");
    let mut rows = read(&["-c", &peer]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ports(&rows).contains(&PORT) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        rows = read(&["-c", &peer]);
    }
    assert!(ports(&rows).contains(&PORT), "{rows:?}");
    for r in &rows {
        assert_eq!(
            r["runtime"]["containerName"].as_str(),
            Some(peer.as_str()),
            "{r}"
        );
    }

    // `ig image inspect` lists the iterator with its fields, the container ones included.
    let out = ig.output(&["image", "inspect", "tcp_iter:test", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let source = &doc["arrays"][0];
    assert_eq!(source["kind"], "BPF iterator", "{doc}");
    assert_eq!(source["programs"][0], "dump_tcp (iter/tcp)", "{doc}");
    let fields: Vec<&str> = source["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(fields.contains(&"sport"), "{fields:?}");
    assert!(fields.contains(&"runtime.containerName"), "{fields:?}");
    drop(host);
}

/// `ig image inspect` lists a BPF iterator's data source, as it does a tracer's.
#[test]
fn image_inspect_lists_a_bpf_iterators_data_source() {
    let ig = Ig::new();
    let out = ig.output(&["image", "inspect", "snapshot_process"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.contains(
            "BPF iterator processes (programs ig_snap_proc (iter/task), struct process_entry"
        ),
        "{text}"
    );
    for field in ["comm", "ppid", "user", "runtime.containerName"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(field)),
            "{field}: {text}"
        );
    }
    let out = ig.output(&["image", "inspect", "snapshot_process", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["arrays"][0]["name"], "processes", "{doc}");
    assert_eq!(doc["arrays"][0]["struct"], "process_entry", "{doc}");
}
