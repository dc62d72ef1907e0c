//! packaging/kubernetes: the manifests validate against Kubernetes' published OpenAPI schemas
//! (offline: the PyPI package kubernetes-validate ships them), broken copies do not, and the
//! DaemonSet runs `ig daemon` the way the daemon and the image expect — its flags, socket, state
//! directory, metrics port and probes are checked against the real `ig` and a real daemon started
//! with the DaemonSet's own arguments. No cluster runs here: nothing is applied anywhere.

#[path = "common/venv.rs"]
mod venv;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_norway::{Mapping, Value};

/// The Kubernetes versions whose schemas the manifests must pass (named in the README): the
/// oldest one with `securityContext.appArmorProfile`, and the newest kubernetes-validate ships.
const VERSIONS: [&str; 2] = ["1.30", "1.37"];
/// The image `make image` builds.
const IMAGE: &str = "ig:dev";
/// Where the node's root is mounted in the pod (`HOST_ROOT`, also set in the image).
const HOST_ROOT: &str = "/host";
/// What the pinned requirements install; the venv lives in a directory named after their hash.
const REQUIREMENTS: &str = include_str!("setup/kubernetes-validate.txt");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifests_dir() -> PathBuf {
    repo().join("packaging/kubernetes")
}

fn text_of(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(c: &mut Command) -> Output {
    c.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {c:?}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The validator: kubernetes-validate in a venv made once per machine (and per requirements).

/// The venv's python (tests/common/venv.rs), made once per machine and per requirements.
fn validator_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        venv::python(
            "kubernetes-validate",
            REQUIREMENTS,
            "tests/setup/kubernetes-validate.txt",
        )
    })
}

/// A Kubernetes object read from a manifest file.
#[derive(Clone, Debug)]
struct Object {
    /// The file, relative to the directory it was read from.
    file: String,
    kind: String,
    name: String,
    value: Value,
}

fn objects_of(dir: &Path, file: &str) -> Vec<Object> {
    let text = std::fs::read_to_string(dir.join(file)).expect("read manifest");
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("{file}: not YAML Kubernetes reads: {e}"));
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        out.push(Object {
            file: file.to_string(),
            kind,
            name,
            value,
        });
    }
    out
}

/// The YAML files of `dir` (and of `dir`/variants), as paths relative to `dir`, in the order
/// `kubectl apply -f DIR` reads them (by name).
fn manifest_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for sub in ["", "variants"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|n| match sub {
            "" => n,
            _ => format!("{sub}/{n}"),
        }));
    }
    files
}

/// Runs `kubernetes-validate --strict` on `files` (relative to `dir`) for every version of
/// [`VERSIONS`]. Ok only when it exits 0 and says exactly "passed" for every object of every
/// file against every version: a warning (an unknown kind or apiVersion, which the tool lets
/// through with exit 0) or a missing line is a failure too. Err holds the tool's output.
fn validate(dir: &Path, files: &[String]) -> Result<String, String> {
    let mut c = Command::new(validator_python());
    c.args(["-m", "kubernetes_validate", "--strict"])
        .current_dir(dir);
    for v in VERSIONS {
        c.args(["-k", v]);
    }
    c.args(files);
    let o = run(&mut c);
    let text = text_of(&o);
    if !o.status.success() {
        return Err(format!("exit {}: {text}", o.status));
    }
    let mut expected = BTreeSet::new();
    for f in files {
        for obj in objects_of(dir, f) {
            for v in VERSIONS {
                expected.insert(format!(
                    "INFO {f} passed for resource {}/{} against version {v}",
                    obj.kind.to_lowercase(),
                    obj.name
                ));
            }
        }
    }
    // stdout only: what Python might warn about on stderr is not the validator's verdict.
    let got: BTreeSet<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    if expected.is_empty() || got != expected {
        return Err(format!("expected only {expected:#?}\ngot: {text}"));
    }
    Ok(text)
}

#[test]
fn manifests_pass_the_kubernetes_schemas() {
    let dir = manifests_dir();
    let files = manifest_files(&dir);
    for f in [
        "00-namespace.yaml",
        "10-serviceaccount.yaml",
        "20-daemonset.yaml",
    ] {
        assert!(files.iter().any(|x| x == f), "{f} missing from {files:?}");
    }
    if let Err(e) = validate(&dir, &files) {
        panic!("packaging/kubernetes does not validate: {e}");
    }
}

/// A copy of the DaemonSet in a temporary directory, changed by `change`.
fn broken_copy(change: impl FnOnce(&mut Value)) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ds = daemonset("20-daemonset.yaml").value;
    change(&mut ds);
    let text = serde_norway::to_string(&ds).expect("serialize");
    std::fs::write(dir.path().join("20-daemonset.yaml"), text).expect("write copy");
    (dir, vec!["20-daemonset.yaml".to_string()])
}

fn pod_spec(ds: &mut Value) -> &mut Mapping {
    ds["spec"]["template"]["spec"]
        .as_mapping_mut()
        .expect("pod spec")
}

fn container_mut(ds: &mut Value) -> &mut Mapping {
    pod_spec(ds)
        .get_mut("containers")
        .and_then(|c| c.get_mut(0))
        .and_then(Value::as_mapping_mut)
        .expect("first container")
}

/// The validator is not vacuous: the DaemonSet copied unchanged passes, and each kind of
/// mistake a hand edit makes fails with the field named.
#[test]
fn broken_manifests_fail_the_schemas() {
    let (dir, files) = broken_copy(|_| {});
    if let Err(e) = validate(dir.path(), &files) {
        panic!("the unchanged copy should pass: {e}");
    }

    /// What is broken, how, and what the error must say.
    type Case = (&'static str, Box<dyn FnOnce(&mut Value)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "a misspelled field (strict)",
            Box::new(|ds| {
                pod_spec(ds).insert("hostPid".into(), true.into());
            }),
            "'hostPid' was unexpected",
        ),
        (
            "a wrong type",
            Box::new(|ds| {
                pod_spec(ds).insert("hostPID".into(), "always".into());
            }),
            "'always' is not of type 'boolean'",
        ),
        (
            "a required field missing",
            Box::new(|ds| {
                container_mut(ds).remove("name");
            }),
            "'name' is a required property",
        ),
        (
            "a capability list that is not a list",
            Box::new(|ds| {
                let sc = container_mut(ds)
                    .get_mut("securityContext")
                    .and_then(Value::as_mapping_mut)
                    .expect("securityContext");
                let mut caps = Mapping::new();
                caps.insert("add".into(), "BPF".into());
                sc.insert("capabilities".into(), Value::Mapping(caps));
            }),
            "'BPF' is not of type 'array'",
        ),
    ];
    for (what, change, fragment) in cases {
        let (dir, files) = broken_copy(change);
        match validate(dir.path(), &files) {
            Ok(out) => panic!("{what} passed: {out}"),
            Err(e) => {
                assert!(
                    e.contains(
                        "ERROR 20-daemonset.yaml did not validate for resource daemonset/ig"
                    ) && e.contains(fragment),
                    "{what}: expected an error with {fragment:?}: {e}"
                );
            }
        }
    }

    // An unknown kind: the tool itself only warns and exits 0; the check must still fail.
    let (dir, files) = broken_copy(|ds| {
        ds["kind"] = "DaemonSett".into();
    });
    match validate(dir.path(), &files) {
        Ok(out) => panic!("an unknown kind passed: {out}"),
        Err(e) => assert!(
            e.contains("Couldn't find schema for kind DaemonSett"),
            "unknown kind: {e}"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// What the DaemonSet says against what `ig daemon` does.

fn daemonset(file: &str) -> Object {
    let objs = objects_of(&manifests_dir(), file);
    objs.into_iter()
        .find(|o| o.kind == "DaemonSet")
        .unwrap_or_else(|| panic!("{file}: no DaemonSet"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| x.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `ig daemon`'s options from its `--help`: name → (takes a value, default).
fn daemon_options() -> BTreeMap<String, (bool, Option<String>)> {
    let o = run(Command::new(env!("CARGO_BIN_EXE_ig")).args(["daemon", "--help"]));
    assert!(o.status.success(), "ig daemon --help: {}", text_of(&o));
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut options = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("--") {
            let name = rest
                .split([' ', '<'])
                .next()
                .unwrap_or_default()
                .to_string();
            let takes = rest[name.len()..].trim_start().starts_with('<');
            options.insert(name.clone(), (takes, None));
            current = Some(name);
        } else if t.starts_with("-h,") || t.starts_with("-V,") {
            current = None;
        }
        if let (Some(name), Some(i)) = (&current, line.find("[default: ")) {
            let d = &line[i + "[default: ".len()..];
            let d = d.split(']').next().unwrap_or_default().to_string();
            if let Some(entry) = options.get_mut(name) {
                entry.1.get_or_insert(d);
            }
        }
    }
    assert!(
        options.contains_key("socket") && options.contains_key("metrics-address"),
        "no options read from: {help}"
    );
    options
}

/// The container's `ig daemon` arguments as option → value ("" for a flag), checking each is an
/// option `ig daemon` has.
fn daemon_args(
    args: &[String],
    options: &BTreeMap<String, (bool, Option<String>)>,
) -> BTreeMap<String, String> {
    assert_eq!(args.first().map(String::as_str), Some("daemon"), "{args:?}");
    let mut out = BTreeMap::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let name = a
            .strip_prefix("--")
            .unwrap_or_else(|| panic!("{a:?}: not an option ({args:?})"));
        let (takes, _) = options
            .get(name)
            .unwrap_or_else(|| panic!("--{name} is not an option of `ig daemon`"));
        let value = if *takes {
            it.next()
                .unwrap_or_else(|| panic!("--{name} without its value"))
                .clone()
        } else {
            String::new()
        };
        out.insert(name.to_string(), value);
    }
    out
}

/// The option's value as the daemon sees it: given, else its default.
fn effective(
    name: &str,
    given: &BTreeMap<String, String>,
    options: &BTreeMap<String, (bool, Option<String>)>,
) -> String {
    given
        .get(name)
        .cloned()
        .or_else(|| options.get(name).and_then(|o| o.1.clone()))
        .unwrap_or_else(|| panic!("--{name}: not given and no default"))
}

/// The node path that `path` in the container is, through a hostPath volume mounted at a parent
/// (or at `path` itself).
fn node_path(pod: &Value, container: &Value, path: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for m in container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        let at = m["mountPath"].as_str()?;
        let rest = if path == at {
            ""
        } else if let Some(r) = path.strip_prefix(at).filter(|r| r.starts_with('/')) {
            r
        } else if at == "/" {
            path
        } else {
            continue;
        };
        let vol = pod["volumes"]
            .as_sequence()?
            .iter()
            .find(|v| v["name"] == m["name"])?;
        let host = vol["hostPath"]["path"].as_str()?;
        let full = match rest {
            "" => host.to_string(),
            _ => format!("{}{rest}", host.trim_end_matches('/')),
        };
        if best.as_ref().is_none_or(|(len, _)| at.len() > *len) {
            best = Some((at.len(), full));
        }
    }
    best.map(|(_, p)| p)
}

/// `/var/run` is `/run` on every distribution that runs Kubernetes.
fn canonical(path: &str) -> String {
    match path.strip_prefix("/var/run/") {
        Some(rest) => format!("/run/{rest}"),
        None => path.to_string(),
    }
}

fn env_of(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

fn port_named(container: &Value, name: &str) -> Option<u64> {
    container["ports"]
        .as_sequence()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
}

#[test]
fn objects_are_applied_in_order_in_one_namespace_without_rbac() {
    let dir = manifests_dir();
    let files: Vec<String> = manifest_files(&dir)
        .into_iter()
        .filter(|f| !f.starts_with("variants/"))
        .collect();
    let objs: Vec<Object> = files.iter().flat_map(|f| objects_of(&dir, f)).collect();
    let kinds: Vec<&str> = objs.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["Namespace", "ServiceAccount", "DaemonSet"],
        "kubectl apply -f packaging/kubernetes/ creates the namespace first: {files:?}"
    );
    let ns = &objs[0].name;
    for o in &objs[1..] {
        assert_eq!(
            o.value["metadata"]["namespace"].as_str(),
            Some(ns.as_str()),
            "{} {}",
            o.file,
            o.name
        );
    }
    // The daemon never talks to the API server: no token, no Role, no ClusterRole.
    let sa = &objs[1];
    assert_eq!(sa.value["automountServiceAccountToken"], false);
    let pod = &objs[2].value["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"].as_str(), Some(sa.name.as_str()));
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        objs[0].value["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
}

#[test]
fn daemonset_runs_ig_daemon_as_the_daemon_and_the_image_expect() {
    let options = daemon_options();
    let ds = daemonset("20-daemonset.yaml").value;
    let pod = &ds["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    assert_eq!(c["image"].as_str(), Some(IMAGE));
    assert_eq!(pod["hostPID"], true, "events name the node's processes");
    assert_ne!(pod["hostNetwork"], true);
    assert_eq!(c["securityContext"]["privileged"], true);
    assert!(
        pod["tolerations"].as_sequence().is_some_and(|t| t
            .iter()
            .any(|t| t["operator"] == "Exists" && t["key"].is_null())),
        "tolerates every taint: {:?}",
        pod["tolerations"]
    );
    for kind in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(!c["resources"][kind][r].is_null(), "resources.{kind}.{r}");
        }
    }

    // HOST_ROOT: the node's root, where ig looks for runtimes, /proc and /etc/passwd.
    assert_eq!(env_of(c, "HOST_ROOT").as_deref(), Some(HOST_ROOT));
    assert_eq!(node_path(pod, c, HOST_ROOT).as_deref(), Some("/"));

    let command = strs(&c["command"]);
    assert_eq!(command, ["/usr/bin/ig"], "the image's ig");
    let args = daemon_args(&strs(&c["args"]), &options);

    // The socket: on the node it is where `ig` looks by default, so `sudo ig list` there needs
    // no flag; in the pod IG_REMOTE names it.
    let socket = effective("socket", &args, &options);
    let default_socket = options["socket"].1.clone().expect("--socket default");
    let on_node = node_path(pod, c, &socket)
        .unwrap_or_else(|| panic!("{socket} is not on a hostPath volume"));
    assert_eq!(canonical(&on_node), canonical(&default_socket));
    let socket_dir = Path::new(&socket).parent().expect("socket dir");
    assert!(
        c["volumeMounts"].as_sequence().is_some_and(|m| m
            .iter()
            .any(|m| m["mountPath"] == socket_dir.to_str().unwrap_or("") && m["readOnly"] != true)),
        "the socket's directory is a writable mount of its own"
    );
    let remote = format!("unix://{socket}");
    assert_eq!(env_of(c, "IG_REMOTE").as_deref(), Some(remote.as_str()));

    // The state directory survives the pod.
    let state = effective("state-dir", &args, &options);
    assert_eq!(node_path(pod, c, &state).as_deref(), Some(state.as_str()));

    // Readiness: the daemon answers on its socket; liveness and startup: /metrics on its port.
    assert_eq!(
        strs(&c["readinessProbe"]["exec"]["command"]),
        [command[0].as_str(), "list", "--remote", remote.as_str()]
    );
    let metrics: std::net::SocketAddr = args["metrics-address"].parse().expect("ADDR:PORT");
    assert!(metrics.ip().is_unspecified(), "reachable on the pod's IP");
    assert_eq!(port_named(c, "metrics"), Some(u64::from(metrics.port())));
    for probe in ["livenessProbe", "startupProbe"] {
        assert_eq!(c[probe]["httpGet"]["path"], "/metrics", "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
}

/// The variants are the DaemonSet with only what they say changed.
#[test]
fn variants_differ_from_the_daemonset_only_where_they_say() {
    let options = daemon_options();
    let base = daemonset("20-daemonset.yaml").value;

    let mut caps = daemonset("variants/minimal-caps.yaml").value;
    let sc = container_mut(&mut caps)
        .remove("securityContext")
        .expect("securityContext");
    assert_eq!(sc["privileged"], false);
    let added: BTreeSet<String> = strs(&sc["capabilities"]["add"]).into_iter().collect();
    let want: BTreeSet<String> = [
        "BPF",
        "PERFMON",
        "SYS_ADMIN",
        "SYS_PTRACE",
        "SYS_RESOURCE",
        "NET_ADMIN",
    ]
    .map(String::from)
    .into();
    assert_eq!(added, want);
    assert_eq!(sc["seccompProfile"]["type"], "Unconfined");
    assert_eq!(sc["appArmorProfile"]["type"], "Unconfined");
    let mut stripped = base.clone();
    container_mut(&mut stripped).remove("securityContext");
    assert_eq!(
        caps, stripped,
        "minimal-caps.yaml drifted from 20-daemonset.yaml"
    );

    let mut tls = daemonset("variants/tcp-mtls.yaml").value;
    let c = container_mut(&mut tls);
    let args = strs(&c["args"]);
    let base_args = strs(&base["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(args.starts_with(&base_args), "{args:?}");
    let extra = daemon_args(
        &std::iter::once("daemon".to_string())
            .chain(args[base_args.len()..].iter().cloned())
            .collect::<Vec<_>>(),
        &options,
    );
    let keys: Vec<&str> = extra.keys().map(String::as_str).collect();
    assert_eq!(keys, ["listen", "tls-cert", "tls-client-ca", "tls-key"]);
    let port: u64 = extra["listen"]
        .strip_prefix("tcp://0.0.0.0:")
        .and_then(|p| p.parse().ok())
        .expect("--listen tcp://0.0.0.0:PORT");
    assert_eq!(port_named(c_ref(&tls), "grpc"), Some(port));
    let mount = c_ref(&tls)["volumeMounts"]
        .as_sequence()
        .and_then(|m| m.iter().find(|m| m["name"] == "tls"))
        .expect("tls mount");
    let at = mount["mountPath"].as_str().expect("mountPath");
    for f in ["tls-cert", "tls-key", "tls-client-ca"] {
        assert!(
            extra[f].starts_with(&format!("{at}/")),
            "--{f} {}",
            extra[f]
        );
    }
    let vols = tls["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("volumes");
    let secret = vols
        .iter()
        .find(|v| v["name"] == "tls")
        .expect("tls volume");
    assert_eq!(secret["secret"]["secretName"], "ig-tls");
    // Without the additions it is the DaemonSet.
    let c = container_mut(&mut tls);
    c.insert(
        "args".into(),
        serde_norway::to_value(&base_args).expect("args"),
    );
    for (list, name) in [("ports", "grpc"), ("volumeMounts", "tls")] {
        if let Some(seq) = c.get_mut(list).and_then(Value::as_sequence_mut) {
            seq.retain(|x| x["name"] != name);
        }
    }
    if let Some(seq) = pod_spec(&mut tls)
        .get_mut("volumes")
        .and_then(Value::as_sequence_mut)
    {
        seq.retain(|v| v["name"] != "tls");
    }
    assert_eq!(tls, base, "tcp-mtls.yaml drifted from 20-daemonset.yaml");
}

fn c_ref(ds: &Value) -> &Value {
    &ds["spec"]["template"]["spec"]["containers"][0]
}

/// A real `ig daemon` with the DaemonSet's arguments (its socket, state directory and metrics
/// port moved to this test's own: this machine is not a node, and has no /host) answers the
/// readiness probe's command within its timeout and the liveness probe's GET, and stops within
/// the pod's grace period on SIGTERM with exit 0.
#[test]
fn a_daemon_with_the_daemonsets_arguments_answers_its_probes() {
    let options = daemon_options();
    let ds = daemonset("20-daemonset.yaml").value;
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("run/ig/ig.socket");
    let state = dir.path().join("state");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let metrics = format!("127.0.0.1:{port}");

    let manifest_args = strs(&c["args"]);
    let given = daemon_args(&manifest_args, &options);
    let manifest_socket = effective("socket", &given, &options);
    let mut args = vec!["daemon".to_string()];
    for (k, v) in &given {
        let v = match k.as_str() {
            "socket" => socket.display().to_string(),
            "state-dir" => state.display().to_string(),
            "metrics-address" => metrics.clone(),
            _ => v.clone(),
        };
        args.push(format!("--{k}"));
        if options[k].0 {
            args.push(v);
        }
    }
    if !given.contains_key("state-dir") {
        args.extend(["--state-dir".to_string(), state.display().to_string()]);
    }
    if !given.contains_key("socket") {
        args.extend(["--socket".to_string(), socket.display().to_string()]);
    }
    /// Kills the daemon if the test fails before it stops it.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut guard = Kill(
        Command::new(env!("CARGO_BIN_EXE_ig"))
            .args(&args)
            .env_remove("IG_REMOTE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ig daemon"),
    );

    // The readiness command, with this test's socket for the manifest's.
    let probe: Vec<String> = strs(&c["readinessProbe"]["exec"]["command"])
        .into_iter()
        .map(|a| a.replace(&manifest_socket, &socket.display().to_string()))
        .collect();
    let timeout = Duration::from_secs(c["readinessProbe"]["timeoutSeconds"].as_u64().unwrap_or(1));
    let startup = Duration::from_secs(
        c["startupProbe"]["periodSeconds"].as_u64().unwrap_or(10)
            * c["startupProbe"]["failureThreshold"].as_u64().unwrap_or(3),
    );
    let deadline = Instant::now() + startup;
    let (out, took) = loop {
        let t = Instant::now();
        let o = run(Command::new(env!("CARGO_BIN_EXE_ig"))
            .args(&probe[1..])
            .env_remove("IG_REMOTE"));
        if o.status.success() {
            break (o, t.elapsed());
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            let mut err = String::new();
            if let Some(e) = guard.0.stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("ig daemon {args:?} exited with {status}: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "readiness probe {probe:?} still failing after {startup:?}: {}",
            text_of(&o)
        );
        thread::sleep(Duration::from_millis(200));
    };
    assert!(
        took < timeout,
        "the readiness probe took {took:?} (timeout {timeout:?})"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NAME"),
        "ig list: {}",
        text_of(&out)
    );

    // The liveness GET, as the kubelet sends it.
    let path = c["livenessProbe"]["httpGet"]["path"]
        .as_str()
        .expect("path");
    let mut s = std::net::TcpStream::connect(&metrics).expect("metrics port");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n"
    )
    .expect("send GET");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("ig_instances{status=\"Running\"} 0"),
        "{text}"
    );

    // The kubelet's SIGTERM: exit 0 within terminationGracePeriodSeconds.
    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(guard.0.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = guard.0.try_wait() {
            break s;
        }
        assert!(
            t.elapsed() < grace,
            "ig daemon still running {grace:?} after SIGTERM"
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "ig daemon exited with {status} on SIGTERM"
    );
}
