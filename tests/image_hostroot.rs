//! The `ig` container image (packaging/image/build.sh) run the way users run Inspektor Gadget's:
//! `docker run -v /:/host --pid=host CAPS IMAGE run trace_exec …`, with no other mount. It must
//! find Docker under HOST_ROOT, name a container started after it, name a host user from the
//! host's /etc/passwd, tell its own container from the host, pull nothing, and serve as a
//! daemon to the host's `ig` — with full privileges and with the minimal capability set.
//!
//! The image is built from this test's `ig` (the test profile's binary), so a fresh machine
//! builds it without a release build; `make image` builds `ig:dev` from the release binary.

mod common;
mod containers_common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{args_of, ig_bin, marker, Ig};
use containers_common::{run, setup_script, unique, IMAGE};

/// The image under test; rebuilt by every run of this file (the script removes the previous).
const IG_IMAGE: &str = "ig-test/ig-hostroot:latest";
const WAIT: Duration = Duration::from_secs(30);
const LOOP: &str = "while /bin/true ; do /bin/sleep 1 ; done";

/// `--privileged` as far as this machine allows: its bounding set lacks CAP_SYS_RESOURCE, so
/// `--privileged` itself fails here ("unable to apply caps").
const FULL: &[&str] = &[
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
];

/// The minimal set the README documents, with Docker's default seccomp profile. This
/// machine's Docker (20.10) knows no CAP_BPF nor CAP_PERFMON, so CAP_SYS_ADMIN stands for them
/// (the kernel accepts it for both); `bpf_perfmon_ptrace_suffice` checks the finer set.
const MINIMAL: &[&str] = &[
    "--cap-drop",
    "ALL",
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "SYS_PTRACE",
];

/// Docker up, the busybox test image there, and the ig image built from this test's binary.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        setup_script("docker.sh", &[]).expect("docker setup");
        setup_script("busybox-image.sh", &[]).expect("busybox image");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/image/build.sh");
        let bin = ig_bin();
        let out = Command::new("bash")
            .args([script, &bin.to_string_lossy(), IG_IMAGE])
            .output()
            .expect("run packaging/image/build.sh");
        assert!(
            out.status.success(),
            "packaging/image/build.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    IG_IMAGE
}

/// A user with uid 1000 on the host (created for the test when there is none, removed when
/// the last test using it is done): its name and its group's name.
struct HostUser {
    name: String,
    gid: u32,
    group: String,
}

static USER_USERS: Mutex<(usize, Option<String>)> = Mutex::new((0, None));

impl HostUser {
    fn get() -> HostUser {
        let mut users = USER_USERS.lock().unwrap_or_else(|e| e.into_inner());
        if run("getent", &["passwd", "1000"]).is_err() {
            let name = "igtest1000";
            run(
                "useradd",
                &["-u", "1000", "-U", "-M", "-s", "/bin/false", name],
            )
            .expect("useradd");
            users.1 = Some(name.to_string());
        }
        users.0 += 1;
        let line = run("getent", &["passwd", "1000"]).expect("getent passwd 1000");
        let fields: Vec<&str> = line.split(':').collect();
        let gid: u32 = fields[3].parse().expect("gid");
        let group = run("getent", &["group", &gid.to_string()])
            .ok()
            .and_then(|l| l.split(':').next().map(str::to_string))
            .unwrap_or_else(|| format!("gid:{gid}"));
        HostUser {
            name: fields[0].to_string(),
            gid,
            group,
        }
    }

    /// Runs `/bin/true MARKER` on the host as this user.
    fn exec(&self, marker: &str) {
        common::exec(
            "setpriv",
            &[
                "--reuid",
                "1000",
                "--regid",
                &self.gid.to_string(),
                "--clear-groups",
                "/bin/true",
                marker,
            ],
        );
    }
}

impl Drop for HostUser {
    fn drop(&mut self) {
        let mut users = USER_USERS.lock().unwrap_or_else(|e| e.into_inner());
        users.0 -= 1;
        if users.0 == 0 {
            if let Some(name) = users.1.take() {
                let _ = run("userdel", &[&name]);
            }
        }
    }
}

/// `docker run --rm --pull never --pid=host -v /:/host CAPS IMAGE ARGS…` in the foreground,
/// its output collected; removed when dropped.
struct IgContainer {
    name: String,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect<R: std::io::Read + Send + 'static>(r: R) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    lines
}

/// The `docker run` arguments: the host's root and pid namespace, nothing else mounted.
fn docker_args<'a>(name: &'a str, caps: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "run",
        "--rm",
        "--pull",
        "never",
        "--name",
        name,
        "--pid=host",
        "-v",
        "/:/host",
    ];
    a.extend_from_slice(caps);
    a.extend_from_slice(extra);
    a.push(image());
    a
}

impl IgContainer {
    fn start(prefix: &str, caps: &[&str], ig_args: &[&str]) -> IgContainer {
        let name = unique(prefix);
        let mut args = docker_args(&name, caps, &[]);
        args.extend_from_slice(ig_args);
        let mut child = Command::new("docker")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker run");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        IgContainer {
            name,
            child,
            stdout,
            stderr,
        }
    }

    fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    fn describe(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!("exited ({s})"),
            _ => "running".to_string(),
        };
        format!(
            "ig container {status}; stdout: {:?}; stderr: {}",
            self.stdout.lock().unwrap_or_else(|e| e.into_inner()),
            self.stderr_text()
        )
    }

    fn wait_event(
        &mut self,
        mut poke: impl FnMut(),
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            poke();
            std::thread::sleep(Duration::from_millis(100));
        }
        let found = self.events().into_iter().find(|e| pred(e));
        found.unwrap_or_else(|| panic!("no such event; {}", self.describe()))
    }

    /// Lets a `-c` tracer attach: it says nothing when it is, and shows no host event to
    /// wait for; a few seconds, then it must still be running.
    fn settle(&mut self) {
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "ig stopped early: {}",
            self.describe()
        );
    }
}

impl Drop for IgContainer {
    fn drop(&mut self) {
        let _ = run("docker", &["rm", "-f", &self.name]);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A busybox container removed when dropped.
struct Busybox(String);

impl Drop for Busybox {
    fn drop(&mut self) {
        let _ = run("docker", &["rm", "-f", &self.0]);
    }
}

fn str_at<'a>(e: &'a serde_json::Value, path: &[&str]) -> &'a str {
    path.iter().fold(e, |v, k| &v[*k]).as_str().unwrap_or("")
}

/// The seed's scenario from the image: a container started after the tracer, `-c` its name.
fn late_container_is_named(caps: &[&str]) {
    let name = unique("hostroot-late");
    let mut ig = IgContainer::start(
        "ig-hostroot-c",
        caps,
        &[
            "run",
            "trace_exec",
            "-c",
            &name,
            "-o",
            "json",
            "--timeout",
            "90",
        ],
    );
    ig.settle();
    run(
        "docker",
        &[
            "run", "-d", "--pull", "never", "--name", &name, IMAGE, "sh", "-c", LOOP,
        ],
    )
    .expect("docker run busybox");
    let _busybox = Busybox(name.clone());
    // The entrypoint: its first exec, before Docker announced the container.
    let sh = ig.wait_event(|| {}, |e| str_at(e, &["comm"]) == "sh");
    assert_eq!(str_at(&sh, &["runtime", "containerName"]), name, "{sh}");
    assert_eq!(str_at(&sh, &["runtime", "runtimeName"]), "docker", "{sh}");
    assert_eq!(
        str_at(&sh, &["runtime", "containerImageName"]),
        IMAGE,
        "{sh}"
    );
    assert_eq!(str_at(&sh, &["user"]), "root", "{sh}");
    let sleep = ig.wait_event(|| {}, |e| str_at(e, &["comm"]) == "sleep");
    assert_eq!(args_of(&sleep), ["/bin/sleep", "1"]);
    assert_eq!(str_at(&sleep, &["pcomm"]), "sh");
    assert!(
        ig.events()
            .iter()
            .all(|e| str_at(e, &["runtime", "containerName"]) == name),
        "an event of another container or the host: {}",
        ig.describe()
    );
    assert!(
        !ig.stderr_text().contains("docker.sock"),
        "Docker not found under HOST_ROOT: {}",
        ig.stderr_text()
    );
}

/// `--host`: a host process run as uid 1000 is named from the host's /etc/passwd (the image's
/// names root only), a process in ig's own container is attributed to that container, and a
/// failed exec is shown (its tracepoint needs tracefs, mounted by ig in its container).
fn host_user_and_own_container(caps: &[&str]) {
    let user = HostUser::get();
    let mut ig = IgContainer::start(
        "ig-hostroot-host",
        caps,
        &[
            "run",
            "trace_exec",
            "--host",
            "--ignore-failed=false",
            "-o",
            "json",
            "--timeout",
            "90",
        ],
    );
    let tag = marker("hostroot-user");
    let e = ig.wait_event(
        || user.exec(&tag),
        |e| args_of(e) == ["/bin/true", tag.as_str()],
    );
    assert_eq!(str_at(&e, &["user"]), user.name, "{e}");
    assert_eq!(str_at(&e, &["group"]), user.group, "{e}");
    assert_eq!(str_at(&e, &["runtime", "containerName"]), "", "{e}");
    // A process in ig's own container: a container's, not the host's.
    // (An argument of its own: the other tests' ig containers run the same command.)
    let own = ig.name.clone();
    let own_tag = marker("hostroot-own");
    let e = ig.wait_event(
        || {
            let _ = run("docker", &["exec", &own, "/usr/bin/ig", &own_tag]);
        },
        |e| args_of(e) == ["/usr/bin/ig", own_tag.as_str()],
    );
    assert_eq!(str_at(&e, &["runtime", "containerName"]), own, "{e}");
    assert_eq!(str_at(&e, &["runtime", "runtimeName"]), "docker", "{e}");
    // A failed exec comes from `tracepoint/syscalls/sys_exit_execve`: attached through the
    // tracefs ig mounted in its container (a container's /sys has none).
    let missing = format!("/nonexistent-{tag}");
    let e = ig.wait_event(
        || common::exec(&missing, &[]),
        |e| str_at(e, &["error"]) == "ENOENT" && args_of(e).first() == Some(&missing),
    );
    assert_eq!(str_at(&e, &["user"]), "root", "{e}");
}

#[test]
fn image_is_built_from_scratch_and_pulls_nothing() {
    let image = image();
    let inspect = run(
        "docker",
        &[
            "image",
            "inspect",
            "--format",
            "{{.Parent}}|{{json .Config.Entrypoint}}|{{json .Config.Env}}|{{len .RootFS.Layers}}",
            image,
        ],
    )
    .expect("docker image inspect");
    assert_eq!(
        inspect, r#"|["/usr/bin/ig"]|["HOST_ROOT=/host"]|1"#,
        "a parent image, another entrypoint or environment"
    );
    // The built-in gadgets are in the binary: no registry, no store to seed.
    let out = run(
        "docker",
        &[
            "run",
            "--rm",
            "--pull",
            "never",
            image,
            "image",
            "inspect",
            "trace_exec",
        ],
    )
    .expect("ig image inspect trace_exec in the image");
    assert!(out.contains("trace_exec"), "{out}");
}

#[test]
fn full_privileges_late_container() {
    late_container_is_named(FULL);
}

#[test]
fn full_privileges_host_user_and_own_container() {
    host_user_and_own_container(FULL);
}

#[test]
fn minimal_capabilities_late_container() {
    late_container_is_named(MINIMAL);
}

#[test]
fn minimal_capabilities_host_user_and_own_container() {
    host_user_and_own_container(MINIMAL);
}

/// `docker run … IMAGE daemon` with the socket's directory mounted from the host: the host's
/// `ig list` and `ig run --remote` talk to it, and it names host users from the host's files.
#[test]
fn daemon_in_a_container_answers_the_host() {
    let user = HostUser::get();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("ig-hostroot-daemon");
    let volume = format!("{}:/run/igtest", dir.path().display());
    let mut args = docker_args(&name, MINIMAL, &["-d", "-v", &volume]);
    args.extend_from_slice(&["daemon", "--socket", "/run/igtest/ig.sock"]);
    run("docker", &args).expect("docker run ig daemon");
    let _daemon = Busybox(name.clone());
    let socket = dir.path().join("ig.sock");
    let remote = format!("unix://{}", socket.display());
    let ig = Ig::new();
    let deadline = Instant::now() + WAIT;
    let list = loop {
        let out = ig.output(&["list", "--remote", &remote]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let logs = || run("docker", &["logs", &name]).unwrap_or_else(|e| e.to_string());
    assert!(
        list.status.success(),
        "ig list: {}; daemon: {}",
        common::stderr_of(&list),
        logs()
    );
    assert!(
        common::stdout_of(&list)
            .split_whitespace()
            .eq(["ID", "NAME", "TAGS", "GADGET", "STATUS", "EVENTS", "LOST", "MISSED"]),
        "{}",
        common::stdout_of(&list)
    );
    assert!(Path::new(&socket).exists());

    let running = ig.spawn(&[
        "run",
        "trace_exec",
        "--host",
        "-o",
        "json",
        "--timeout",
        "60",
        "--remote",
        &remote,
    ]);
    let tag = marker("hostroot-daemon");
    let e = running
        .wait_event(
            WAIT,
            || user.exec(&tag),
            |e| args_of(e) == ["/bin/true", tag.as_str()],
        )
        .unwrap_or_else(|| {
            panic!(
                "no event through the daemon; client: {}; daemon: {}",
                running.stderr_text(),
                logs()
            )
        });
    assert_eq!(e["user"], user.name.as_str(), "{e}");
    assert_eq!(e["group"], user.group.as_str(), "{e}");
}

/// Without CAP_SYS_ADMIN: CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE load and attach trace_exec,
/// read the processes' namespaces and name a container and a host user (`setpriv` limits the
/// bounding set, so `ig` runs with these capabilities only; tracefs is already mounted here).
#[test]
fn bpf_perfmon_ptrace_suffice() {
    image();
    let user = HostUser::get();
    let ig = Ig::new();
    let bin = ig_bin();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--bounding-set", "-all,+bpf,+perfmon,+sys_ptrace"])
        .arg(&bin)
        .args([
            "run",
            "trace_exec",
            "--host",
            "-o",
            "json",
            "--timeout",
            "60",
        ])
        .env("IG_STORE", ig.store.path())
        .env_remove("HOST_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("setpriv ig");
    let mut tracer = IgContainer {
        name: unique("no-such-container"),
        stdout: collect(child.stdout.take().expect("stdout")),
        stderr: collect(child.stderr.take().expect("stderr")),
        child,
    };
    let tag = marker("caps-user");
    let e = tracer.wait_event(
        || user.exec(&tag),
        |e| args_of(e) == ["/bin/true", tag.as_str()],
    );
    assert_eq!(str_at(&e, &["user"]), user.name, "{e}");
    let name = unique("caps-busybox");
    let _busybox = Busybox(name.clone());
    run(
        "docker",
        &[
            "run", "-d", "--pull", "never", "--name", &name, IMAGE, "sh", "-c", LOOP,
        ],
    )
    .expect("docker run busybox");
    let e = tracer.wait_event(
        || {},
        |e| str_at(e, &["runtime", "containerName"]) == name && str_at(e, &["comm"]) == "sleep",
    );
    assert_eq!(str_at(&e, &["runtime", "runtimeName"]), "docker", "{e}");
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", tracer.child.id())).unwrap_or_default();
    let caps = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap_or_default()
        .to_string();
    // CAP_SYS_PTRACE (19), CAP_PERFMON (38), CAP_BPF (39).
    assert_eq!(
        caps.split_whitespace().nth(1),
        Some("000000c000080000"),
        "{caps}"
    );
}
