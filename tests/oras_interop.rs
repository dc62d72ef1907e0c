//! Interoperability with a second OCI client, the ORAS Python SDK (PyPI `oras`, driven by
//! tests/setup/oras-client.py from a venv under /var/cache/ig-test): it pulls a gadget `ig image
//! push`ed (index → manifest for the platform → config and eBPF layer, every byte matching its
//! digest), and `ig` pulls, inspects and runs a gadget ORAS pushed in its own layout (one
//! manifest, no index, no artifactType). An ORAS artifact that is not a gadget is refused by name.

mod common;
#[path = "common/dist.rs"]
mod dist;

#[path = "common/venv.rs"]
mod venv;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use dist::{run_sees_open, Dist, Registry};

const REQUIREMENTS: &str = include_str!("setup/oras.txt");
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/setup/oras-client.py");
const MEDIA_CONFIG: &str = "application/vnd.gadget.config.v1+yaml";
const MEDIA_EBPF: &str = "application/vnd.gadget.ebpf.program.v1+binary";

fn text_of(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The venv's python (tests/common/venv.rs), made once per machine and per requirements.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| venv::python("oras", REQUIREMENTS, "tests/setup/oras.txt"))
}

/// Runs tests/setup/oras-client.py; its stdout (trimmed).
fn oras(args: &[&str]) -> String {
    let o = Command::new(python())
        .arg(CLIENT)
        .args(args)
        .output()
        .expect("run oras-client.py");
    assert!(
        o.status.success(),
        "oras-client.py {args:?}: {}",
        text_of(&o)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The architecture name OCI platforms use for this machine.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `ig image build` + `ig image push` of the test gadget as `host/repo:v1`.
fn push_with_ig(reg: &Registry, d: &Dist, repo: &str) -> String {
    let r = reg.reference(&format!("{repo}:v1"));
    d.build(&r);
    d.ok(&["image", "push", &r, "--insecure-registries", &reg.host]);
    r
}

/// ORAS pulls `repo:v1` into `out`; its summary.
fn pull_with_oras(reg: &Registry, repo: &str, out: &Path) -> serde_json::Value {
    let summary = oras(&[
        "pull",
        &reg.host,
        repo,
        "v1",
        arch(),
        out.to_str().expect("utf-8 path"),
    ]);
    serde_json::from_str(&summary).unwrap_or_else(|e| panic!("{e}: {summary}"))
}

#[test]
fn oras_pulls_a_gadget_ig_pushed() {
    let reg = Registry::start();
    let d = Dist::new();
    let r = push_with_ig(&reg, &d, "ig/trace_open");
    let out = tempfile::tempdir().expect("tempdir");
    let s = pull_with_oras(&reg, "ig/trace_open", out.path());

    assert_eq!(
        s["top_media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<&str> = s["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(
        platforms.contains(&"amd64") && platforms.contains(&"arm64"),
        "{platforms:?}"
    );
    assert_eq!(
        s["manifest_media_type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(s["artifact_type"], "application/vnd.gadget.v1+binary");
    assert_eq!(
        s["annotations"]["org.opencontainers.image.description"],
        "Trace openat calls (a test gadget)"
    );
    // The manifest ORAS chose for this machine is the one ig runs.
    let inspect: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "inspect", "-o", "json", &r])).expect("json");
    assert_eq!(s["manifest_digest"], inspect["manifestDigest"]);

    // Every byte ORAS received matches the digest ig declared.
    let config = &s["config"];
    assert_eq!(config["media_type"], MEDIA_CONFIG);
    assert_eq!(config["received"], config["digest"]);
    let yaml = std::fs::read_to_string(config["path"].as_str().expect("config path"))
        .expect("config pulled by oras");
    let original = std::fs::read_to_string(Path::new(dist::GADGET_DIR).join("gadget.yaml"))
        .expect("the test gadget's gadget.yaml");
    assert_eq!(
        yaml, original,
        "the config is the gadget.yaml, byte for byte"
    );
    let layers = s["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{layers:?}");
    assert_eq!(layers[0]["media_type"], MEDIA_EBPF);
    assert_eq!(layers[0]["received"], layers[0]["digest"]);
    let object =
        std::fs::read(layers[0]["path"].as_str().expect("layer path")).expect("layer file");
    assert_eq!(Some(object.len() as u64), layers[0]["size"].as_u64());
    assert!(
        object.starts_with(b"\x7fELF"),
        "the eBPF layer is an ELF object"
    );
}

#[test]
fn ig_pulls_inspects_and_runs_a_gadget_oras_pushed() {
    let reg = Registry::start();
    // The gadget's files, as a user of ORAS would have them: pulled from an ig push.
    let builder = Dist::new();
    push_with_ig(&reg, &builder, "ig/trace_open");
    let out = tempfile::tempdir().expect("tempdir");
    let s = pull_with_oras(&reg, "ig/trace_open", out.path());
    let config = out.path().join("gadget.yaml");
    let object = out.path().join("program.bpf.o");
    std::fs::copy(s["config"]["path"].as_str().expect("path"), &config).expect("copy");
    std::fs::copy(s["layers"][0]["path"].as_str().expect("path"), &object).expect("copy");

    // ORAS pushes it its way: one manifest, no index, no artifactType, layer titles.
    let pushed = oras(&[
        "push",
        &reg.host,
        "oras/trace_open",
        "v2",
        config.to_str().expect("utf-8"),
        object.to_str().expect("utf-8"),
        "org.opencontainers.image.created=2026-01-02T03:04:05Z",
    ]);
    assert!(pushed.starts_with("sha256:"), "{pushed}");

    let d = Dist::new();
    let r = reg.reference("oras/trace_open:v2");
    d.ok(&["image", "pull", &r, "--insecure-registries", &reg.host]);
    let inspect: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "inspect", "-o", "json", &r])).expect("json");
    // ORAS's manifest bytes are kept as they are: the digest is the one ORAS computed.
    assert_eq!(inspect["digest"], pushed.as_str());
    assert_eq!(inspect["manifestDigest"], pushed.as_str());
    assert_eq!(inspect["name"], "trace_open");
    assert_eq!(inspect["description"], "Trace openat calls (a test gadget)");
    assert_eq!(inspect["created"], "2026-01-02T03:04:05Z");
    assert!(
        inspect["params"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["key"] == "comm")),
        "{inspect}"
    );
    run_sees_open(&d.ig, &r, &["--verify-image=false"])
        .expect("events from the gadget ORAS pushed");
}

#[test]
fn an_oras_artifact_that_is_not_a_gadget_is_refused_by_name() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a gadget\n").expect("write");
    oras(&[
        "push-artifact",
        &reg.host,
        "oras/notes",
        "v1",
        notes.to_str().expect("utf-8"),
        "text/plain",
    ]);
    let d = Dist::new();
    let r = reg.reference("oras/notes:v1");
    // Any OCI artifact can be stored; running it is what needs a gadget.
    d.ok(&["image", "pull", &r, "--insecure-registries", &reg.host]);
    for args in [
        vec!["image", "inspect", r.as_str()],
        vec!["run", r.as_str(), "--verify-image=false", "--host"],
    ] {
        let err = d.fail(&args);
        assert!(
            err.contains(&r)
                && err.contains("config has media type application/vnd.unknown.config.v1+json")
                && err.contains(MEDIA_CONFIG),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}
