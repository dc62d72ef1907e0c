//! trace_exec with real containers: selection with -c, enrichment, the first exec of a container
//! started after the tracer, containerd with Kubernetes labels, and --host.

mod common;
mod containers_common;

use std::time::Duration;

use common::*;
use containers_common::{run, setup, unique, CTR_IMAGE, IMAGE};

const WAIT: Duration = Duration::from_secs(30);
const LOOP: &str = "while /bin/true ; do whoami ; /bin/sleep 1 ; done";

/// A container removed when dropped.
struct Docker(String);

impl Docker {
    fn run(name: &str, script: &str) -> Self {
        run(
            "docker",
            &["run", "-d", "--name", name, IMAGE, "sh", "-c", script],
        )
        .expect("docker run");
        Docker(name.to_string())
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let _ = run("docker", &["rm", "-f", &self.0]);
    }
}

fn comm_of(e: &serde_json::Value) -> &str {
    e["comm"].as_str().unwrap_or("")
}

fn container_of(e: &serde_json::Value) -> &str {
    e["runtime"]["containerName"].as_str().unwrap_or("")
}

#[test]
fn selects_one_container_and_enriches_it() {
    setup();
    let name = unique("test-trace-exec");
    let other = unique("other-trace-exec");
    let _a = Docker::run(&name, LOOP);
    let _b = Docker::run(&other, LOOP);
    let ig = Ig::new();
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "-c",
        &name,
        "-o",
        "json",
        "--timeout",
        "60",
    ]);
    let host_marker = marker("host");
    for comm in ["true", "sleep"] {
        let e = run
            .wait_event(
                WAIT,
                || exec("/bin/true", &[&host_marker]),
                |e| comm_of(e) == comm,
            )
            .unwrap_or_else(|| panic!("no {comm} event; stderr: {}", run.stderr_text()));
        assert_eq!(container_of(&e), name);
        assert_eq!(e["runtime"]["runtimeName"], "docker");
        assert_eq!(e["runtime"]["containerImageName"], IMAGE);
        assert!(e["runtime"]["containerId"]
            .as_str()
            .is_some_and(|id| id.len() == 64));
        assert_eq!(e["pcomm"], "sh");
        assert_eq!(e["user"], "root");
    }
    let e = run
        .wait_event(WAIT, || {}, |e| comm_of(e) == "sleep")
        .expect("sleep");
    assert_eq!(e["args"], serde_json::json!(["/bin/sleep", "1"]));
    let events = run.events();
    assert!(
        events.iter().all(|e| container_of(e) == name),
        "an event of another container or the host"
    );
    assert!(
        !events.iter().any(|e| args_of(e).contains(&host_marker)),
        "a host event without --host"
    );
}

#[test]
fn first_exec_of_a_container_started_after_the_tracer() {
    setup();
    let name = unique("late-trace-exec");
    let ig = Ig::new();
    let run = ig.spawn(&[
        "run",
        "trace_exec",
        "-c",
        &name,
        "-o",
        "json",
        "--timeout",
        "60",
    ]);
    // Let it attach: trace_exec with -c shows nothing until the container exists.
    std::thread::sleep(Duration::from_secs(2));
    let _c = Docker::run(&name, LOOP);
    let e = run
        .wait_event(WAIT, || {}, |e| comm_of(e) == "sh")
        .unwrap_or_else(|| {
            panic!(
                "no entrypoint event; events: {:?}; stderr: {}",
                run.lines(),
                run.stderr_text()
            )
        });
    assert_eq!(container_of(&e), name);
    assert_eq!(args_of(&e), vec!["sh", "-c", LOOP]);
    let pcomm = e["pcomm"].as_str().unwrap_or("");
    assert!(
        pcomm.starts_with("containerd-shim") || pcomm.starts_with("runc"),
        "pcomm {pcomm}"
    );
    let t = run
        .wait_event(WAIT, || {}, |e| comm_of(e) == "true")
        .expect("true");
    assert_eq!(container_of(&t), name);
    assert_eq!(t["ppid"], e["pid"]);
}

#[test]
fn host_processes_only_with_host() {
    setup();
    let ig = Ig::new();
    let with = ig.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "60",
    ]);
    let without = ig.spawn(&["run", "trace_exec", "-o", "json", "--timeout", "60"]);
    let name = unique("host-check");
    let _c = Docker::run(&name, LOOP);
    let m = marker("hostproc");
    let e = with
        .wait_event(
            WAIT,
            || exec("/bin/true", &[&m]),
            |e| args_of(e).contains(&m),
        )
        .expect("host event with --host");
    assert_eq!(container_of(&e), "");
    // The container's events reach both; the host's only the first.
    without
        .wait_event(WAIT, || {}, |e| container_of(e) == name)
        .expect("container event without --host");
    exec("/bin/true", &[&m]);
    with.wait_event(WAIT, || {}, |e| container_of(e) == name)
        .expect("container event with --host");
    assert!(
        !without.events().iter().any(|e| args_of(e).contains(&m)),
        "host event without --host"
    );
}

struct Ctr {
    sock: String,
    ns: String,
    id: String,
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = run(
            "ctr",
            &[
                "-a", &self.sock, "-n", &self.ns, "tasks", "kill", "-s", "SIGKILL", &self.id,
            ],
        );
        std::thread::sleep(Duration::from_millis(300));
        let _ = run(
            "ctr",
            &[
                "-a", &self.sock, "-n", &self.ns, "tasks", "delete", "-f", &self.id,
            ],
        );
        let _ = run(
            "ctr",
            &[
                "-a",
                &self.sock,
                "-n",
                &self.ns,
                "containers",
                "delete",
                &self.id,
            ],
        );
    }
}

#[test]
fn containerd_containers_carry_runtime_and_k8s_fields() {
    let sock = setup();
    let ig = Ig::new();
    let run_ig = ig.spawn(&[
        "run",
        "trace_exec",
        "--runtimes",
        "containerd",
        "--containerd-socketpath",
        &sock,
        "-o",
        "json",
        "--timeout",
        "60",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let mut ctrs = Vec::new();
    for ns in ["k8s.io", "default"] {
        let id = unique("ctr");
        let pod = format!("pod-{id}");
        let labels = [
            "io.kubernetes.pod.namespace=demo".to_string(),
            format!("io.kubernetes.pod.name={pod}"),
            format!("io.kubernetes.container.name=c-{id}"),
        ];
        let mut args = vec!["-a", sock.as_str(), "-n", ns, "run", "-d"];
        for l in &labels {
            args.extend_from_slice(&["--label", l]);
        }
        args.extend_from_slice(&[CTR_IMAGE, &id, "sh", "-c", LOOP]);
        run("ctr", &args).expect("ctr run");
        ctrs.push(Ctr {
            sock: sock.clone(),
            ns: ns.to_string(),
            id: id.clone(),
        });
        let e = run_ig
            .wait_event(
                WAIT,
                || {},
                |e| e["k8s"]["podName"] == pod.as_str() && comm_of(e) == "true",
            )
            .unwrap_or_else(|| panic!("no event from {ns}/{id}; stderr: {}", run_ig.stderr_text()));
        assert_eq!(e["runtime"]["runtimeName"], "containerd");
        assert_eq!(e["k8s"]["namespace"], "demo");
        assert_eq!(e["k8s"]["containerName"], format!("c-{id}").as_str());
        assert_eq!(e["runtime"]["containerId"], id.as_str());
    }
}

#[test]
fn container_churn_does_not_grow_the_filter_map() {
    setup();
    let ig = Ig::new();
    let keep = unique("churn-keep");
    let mut cmd = ig.cmd(&[
        "run",
        "trace_exec",
        "-c",
        &keep,
        "-o",
        "json",
        "--timeout",
        "40",
    ]);
    cmd.env("IG_STATS", "1");
    let tracer = {
        use std::process::Stdio;
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ig")
    };
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..20 {
        let name = format!("{}-{i}", unique("churn"));
        run(
            "docker",
            &[
                "run",
                "--rm",
                "--name",
                &name,
                IMAGE,
                "sh",
                "-c",
                "/bin/true ; /bin/true",
            ],
        )
        .expect("docker run");
    }
    // Removed containers are forgotten 5 s after their removal.
    std::thread::sleep(Duration::from_secs(8));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let out = tracer.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stats = stderr
        .lines()
        .find(|l| l.starts_with("ig: stats:"))
        .unwrap_or_else(|| panic!("no stats: {stderr}"));
    let entries: usize = stats
        .split("filter-map entries ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("entries");
    // Host-side namespaces and the containers other tests run at the same time remain; 20
    // containers that came and went must not.
    assert!(entries < 15, "filter map grew with churn: {stats}");
    assert!(stats.contains("held namespaces 0"), "{stats}");
}
