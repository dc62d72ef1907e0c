//! Gadgets written for Inspektor Gadget: built from source against our headers with
//! `ig image build`, compiled with plain clang outside it and imported from an OCI archive,
//! and objects laid out as their headers lay them out (perf event array, `<map>_lost_samples`,
//! inode-keyed filter map). Fields are decoded and asserted; unknown gadget.yaml keys and
//! annotations are ignored, said at debug level.

mod common;
mod containers_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use containers_common::{setup, unique, DockerContainer};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(30);
const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets");

/// `cat` under a command name of our own (at most 15 bytes), so a `--comm` filter sees only it.
fn renamed_cat(dir: &Path, comm: &str) -> PathBuf {
    let p = dir.join(comm);
    std::fs::copy("/bin/cat", &p).expect("copy cat");
    p
}

fn run_ig(ig: &Ig, image: &str, extra: &[&str]) -> Running {
    let mut args = vec![
        "run",
        image,
        "--verify-image=false",
        "-o",
        "json",
        "--timeout",
        "90",
    ];
    args.extend_from_slice(extra);
    ig.spawn(&args)
}

fn built(ig: &Ig, gadget: &str, tag: &str) {
    let out = build(ig, &Path::new(SRC).join(gadget), tag);
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// The fields an ig_tracer event must carry for `comm` opening `path`.
fn assert_tracer_event(e: &serde_json::Value, comm: &str, path: &str) {
    assert_eq!(e["proc"]["comm"], comm, "{e}");
    assert_eq!(e["fname"], path, "{e}");
    assert!(e["proc"]["pid"].as_u64().is_some_and(|p| p > 0), "{e}");
    assert_eq!(e["proc"]["pid"], e["proc"]["tid"], "{e}");
    assert_eq!(e["proc"]["creds"]["uid"], 0, "{e}");
    assert_eq!(e["proc"]["creds"]["user"], "root", "{e}");
    assert!(
        e["proc"]["parent"]["pid"].as_u64().is_some_and(|p| p > 0),
        "{e}"
    );
    // the open's flags, named from gadget_file_flags; O_RDONLY is 0
    assert!(
        e["flags"]
            .as_str()
            .is_some_and(|f| f.starts_with("O_RDONLY")),
        "{e}"
    );
    // the .kconfig extern: LINUX_KERNEL_VERSION as libbpf computes it from the running kernel
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0).min(255),
    );
    assert_eq!(e["kversion"], (a << 16) + (b << 8) + c, "{e}");
    // the inert kernel stack stub says "no stack"
    assert_eq!(e["kstack_raw"], u32::MAX, "{e}");
    assert!(
        e["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{e}"
    );
}

#[test]
fn ig_api_tracer_builds_and_runs_with_a_string_param() {
    let ig = Ig::new();
    built(&ig, "ig_tracer", "compat/ig_tracer:v1");
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = renamed_cat(dir.path(), "igcompat-str");
    let other = renamed_cat(dir.path(), "igcompat-other");
    let target = dir.path().join(marker("opened"));
    std::fs::write(&target, "x").expect("write");
    let target = target.to_string_lossy().into_owned();
    let run = run_ig(
        &ig,
        "compat/ig_tracer:v1",
        &["--host", "--comm", "igcompat-str"],
    );
    let e = run
        .wait_event(
            WAIT,
            || {
                exec(other.to_str().expect("utf8"), &[&target]);
                exec(cat.to_str().expect("utf8"), &[&target]);
            },
            |e| e["fname"] == target.as_str(),
        )
        .unwrap_or_else(|| panic!("no event; stderr: {}", run.stderr_text()));
    assert_tracer_event(&e, "igcompat-str", &target);
    // targ_comm is decided in BPF: the other command's opens of the same file never came.
    let events = run.events();
    assert!(
        events.iter().all(|e| e["proc"]["comm"] == "igcompat-str"),
        "{events:?}"
    );
    let (status, _, stderr) = run.stop();
    assert!(status.success() || status.code().is_none(), "{stderr}");
}

/// A comm longer than targ_comm's 15 bytes is refused by name, before anything loads.
#[test]
fn a_too_long_string_param_is_refused() {
    let ig = Ig::new();
    built(&ig, "ig_tracer", "compat/ig_tracer:v1");
    let out = ig.output(&[
        "run",
        "compat/ig_tracer:v1",
        "--verify-image=false",
        "--host",
        "--comm",
        "a-command-name-far-too-long",
        "--timeout",
        "1",
    ]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("comm"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Columns honour the yaml's annotations: hex integers, maxwidth with the cut at the start,
/// templates; unknown annotations and keys do not stop the run, and are said with RUST_LOG=debug.
#[test]
fn annotations_shape_columns_and_unknown_ones_are_debug_messages() {
    let ig = Ig::new();
    built(&ig, "ig_tracer", "compat/ig_tracer:v1");
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = renamed_cat(dir.path(), "igcompat-col");
    let target = dir.path().join("a-rather-long-file-name-to-cut");
    std::fs::write(&target, "x").expect("write");
    let target = target.to_string_lossy().into_owned();
    let run = ig.spawn_with_env(
        &[
            "run",
            "compat/ig_tracer:v1",
            "--verify-image=false",
            "--host",
            "--comm",
            "igcompat-col",
            "--fields",
            "proc.comm,flags_raw,fname",
            "--timeout",
            "90",
        ],
        &[("RUST_LOG", "debug")],
    );
    // comm: the template's 16; flags_raw: hex, right-aligned (an integer), width 10; fname:
    // width 64 bounded by maxwidth 12, cut at the start. cat opens its file O_RDONLY (0).
    let want = "igcompat-col            0x0 …name-to-cut";
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline && !run.lines().iter().any(|l| l == want) {
        exec(cat.to_str().expect("utf8"), &[&target]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = run.lines();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("PROC.COMM         FLAGS_RAW FNAME"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == want), "{want:?} not in {lines:?}");
    let (status, _, stderr) = run.stop();
    assert!(status.success() || status.code().is_none(), "{stderr}");
    for said in [
        "ig: debug: gadget.yaml: key \"someFutureKey\" is not one ig uses; ignored",
        "ig: debug: gadget.yaml: data source open: field proc.comm: annotation columns.futureknob: \"7\" is not one ig uses; ignored",
        "ig: debug: gadget.yaml: data source open: field no_such_field is not in the event: its annotations are ignored",
    ] {
        // said once per run (the yaml is parsed, and the schema built, more than once)
        assert_eq!(stderr.matches(said).count(), 1, "{said} not once in:\n{stderr}");
    }
    // Without RUST_LOG, not a word of it.
    let out = ig.output(&[
        "run",
        "compat/ig_tracer:v1",
        "--verify-image=false",
        "--host",
        "--timeout",
        "1",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("debug"), "{}", stderr_of(&out));
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn desc(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()})
}

/// An OCI image layout as a tar, the way Inspektor Gadget's tools export a gadget: an image
/// index with one amd64 manifest (artifactType application/vnd.gadget.v1+binary), the raw
/// gadget.yaml as config, the object as the eBPF layer; tagged `reference`.
fn oci_archive(yaml: &[u8], object: &[u8], reference: &str) -> Vec<u8> {
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.gadget.v1+binary",
        "config": desc("application/vnd.gadget.config.v1+yaml", yaml),
        "layers": [desc("application/vnd.gadget.ebpf.program.v1+binary", object)],
        "annotations": {"org.opencontainers.image.title": "ig_tracer"},
    }))
    .expect("json");
    let mut m = desc("application/vnd.oci.image.manifest.v1+json", &manifest);
    m["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [m],
    }))
    .expect("json");
    let mut top = desc("application/vnd.oci.image.index.v1+json", &index);
    top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": reference});
    let layout_index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [top],
    }))
    .expect("json");
    let mut members: Vec<(String, Vec<u8>)> = vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), layout_index),
    ];
    for blob in [yaml.to_vec(), object.to_vec(), manifest, index] {
        members.push((format!("blobs/sha256/{}", &sha256(&blob)[7..]), blob));
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes.as_slice())
            .expect("tar");
    }
    tar.into_inner().expect("tar")
}

/// ELF section names of an object (`llvm-readelf -S`).
fn sections(object: &Path) -> String {
    let out = Command::new("llvm-readelf")
        .arg("-S")
        .arg(object)
        .output()
        .expect("llvm-readelf (apt-get install llvm)");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn object_built_with_plain_clang_and_imported_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = env!("CARGO_MANIFEST_DIR");
    let object = dir.path().join("program.o");
    // Inspektor Gadget's toolchain: clang -target bpf -g -O2, then the DWARF stripped (BTF kept).
    let out = Command::new("clang")
        .args(["-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86", "-I"])
        .arg(Path::new(root).join("bpf"))
        .arg("-I")
        .arg(Path::new(root).join("vmlinux/x86_64"))
        .arg("-c")
        .arg(Path::new(SRC).join("ig_tracer/program.bpf.c"))
        .arg("-o")
        .arg(&object)
        .output()
        .expect("clang");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(sections(&object).contains(".debug_info"));
    let out = Command::new("llvm-strip")
        .arg("-g")
        .arg(&object)
        .output()
        .expect("llvm-strip");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let s = sections(&object);
    assert!(!s.contains(".debug_info") && s.contains(".BTF"), "{s}");

    let yaml = std::fs::read(Path::new(SRC).join("ig_tracer/gadget.yaml")).expect("yaml");
    let bytes = std::fs::read(&object).expect("object");
    let reference = "registry.invalid/compat/plain-clang:v1";
    let archive = dir.path().join("gadget.tar");
    std::fs::write(&archive, oci_archive(&yaml, &bytes, reference)).expect("archive");

    let ig = Ig::new();
    let out = ig.output(&["image", "import", archive.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), format!("Imported {reference}\n"));

    let cat = renamed_cat(dir.path(), "igcompat-plain");
    let target = dir.path().join(marker("plain"));
    std::fs::write(&target, "x").expect("write");
    let target = target.to_string_lossy().into_owned();
    let run = run_ig(&ig, reference, &["--host", "--comm", "igcompat-plain"]);
    let e = run
        .wait_event(
            WAIT,
            || exec(cat.to_str().expect("utf8"), &[&target]),
            |e| e["fname"] == target.as_str(),
        )
        .unwrap_or_else(|| panic!("no event; stderr: {}", run.stderr_text()));
    assert_tracer_event(&e, "igcompat-plain", &target);
}

/// Inspektor Gadget's object layout: a perf event array read per CPU, its `<map>_lost_samples`
/// counter, `gadget_heap`, and a filter map keyed by the inode alone. Selected by container:
/// the events of the container, none of the host's with the same command.
#[test]
fn perf_array_object_with_their_filter_map_selects_a_container() {
    setup();
    let name = unique("igcompat-perf");
    let mark = marker("perf");
    let script = format!("while true; do cat /etc/{mark} 2>/dev/null; sleep 0.3; done");
    let c = DockerContainer::run_script(&name, &script).expect("docker run");
    let ig = Ig::new();
    built(&ig, "ig_perf", "compat/ig_perf:v1");
    let dir = tempfile::tempdir().expect("tempdir");
    let host_cat = renamed_cat(dir.path(), "cat");
    let host_path = format!("/etc/{mark}");
    let run = run_ig(&ig, "compat/ig_perf:v1", &["-c", &name, "--comm", "cat"]);
    let e = run
        .wait_event(
            WAIT,
            || exec(host_cat.to_str().expect("utf8"), &[&host_path]),
            |e| e["fname"] == host_path.as_str(),
        )
        .unwrap_or_else(|| panic!("no event; stderr: {}", run.stderr_text()));
    assert_eq!(e["runtime"]["containerName"], name.as_str(), "{e}");
    assert_eq!(e["runtime"]["runtimeName"], "docker", "{e}");
    assert_eq!(e["comm"], "cat", "{e}");
    assert_eq!(e["error"], "", "{e}");
    let pid = c.pid().expect("pid");
    assert_eq!(
        e["mntns_id"].as_u64(),
        containers_common::mntns_of(pid).ok(),
        "{e}"
    );
    // A few more rounds of host opens of the same path: none of them shows.
    for _ in 0..5 {
        exec(host_cat.to_str().expect("utf8"), &[&host_path]);
    }
    run.wait_event(Duration::from_secs(2), || {}, |_| false);
    let events = run.events();
    assert!(
        events
            .iter()
            .all(|e| e["runtime"]["containerName"] == name.as_str()),
        "{events:?}"
    );
    let (_, _, stderr) = run.stop();
    assert!(!stderr.contains("lost"), "{stderr}");
}

/// FNV-1a 64 over `bytes` (what gadget/fnv1a.h computes in BPF; a few lines, no crate needed).
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The change time of `path` in ns since the epoch, as stat(2) gives it.
fn ctime_ns(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).expect("stat");
    m.ctime() as u64 * 1_000_000_000 + m.ctime_nsec() as u64
}

/// An exec tracer in their trace_exec's style: get_path_str() gives the executable's, its
/// parent's and the working directory's absolute paths, gadget_get_ctime_nanosec_from_inode()
/// the executable's change time (equal to stat's), fnv1a.h hashes as FNV-1a does, and the
/// socket enrichment map, which nothing fills under ig, finds nothing. `--paths=false` turns
/// the paths off in BPF (their `paths` param).
#[test]
fn ig_api_exec_tracer_reads_paths_and_inode_ctime() {
    let ig = Ig::new();
    built(&ig, "ig_exec", "compat/ig_exec:v1");
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_path = dir.path().canonicalize().expect("canonicalize");
    let bin = dir_path.join("igcompat-exec");
    std::fs::copy("/bin/true", &bin).expect("copy true");
    let cwd = dir_path.join("a working dir");
    std::fs::create_dir(&cwd).expect("mkdir");
    let me = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .expect("current exe");
    let spawn_bin = || {
        let _ = Command::new(&bin).current_dir(&cwd).status();
    };

    let run = run_ig(
        &ig,
        "compat/ig_exec:v1",
        &["--host", "--comm", "igcompat-exec"],
    );
    let e = run
        .wait_event(WAIT, spawn_bin, |e| e["proc"]["comm"] == "igcompat-exec")
        .unwrap_or_else(|| panic!("no event; stderr: {}", run.stderr_text()));
    let (status, _, stderr) = run.stop();
    assert!(status.success() || status.code().is_none(), "{stderr}");

    assert_eq!(e["exepath"], bin.to_str().expect("utf8"), "{e}");
    assert_eq!(e["cwd"], cwd.to_str().expect("utf8"), "{e}");
    assert_eq!(e["parent_exepath"], me.to_str().expect("utf8"), "{e}");
    let ctime = ctime_ns(&bin);
    assert_eq!(e["ctime"], ctime, "{e}");
    assert_eq!(e["pctime"], ctime_ns(&me), "{e}");
    let pid = e["proc"]["pid"].as_u64().expect("pid") as u32;
    let mut bytes = pid.to_le_bytes().to_vec();
    bytes.extend_from_slice(&ctime.to_le_bytes());
    assert_eq!(e["hash"], fnv1a_64(&bytes), "{e}");
    assert_eq!(e["socket_known"], false, "{e}");
    assert_eq!(e["proc"]["parent"]["pid"], std::process::id(), "{e}");

    let run = run_ig(
        &ig,
        "compat/ig_exec:v1",
        &["--host", "--comm", "igcompat-exec", "--paths=false"],
    );
    let e = run
        .wait_event(WAIT, spawn_bin, |e| e["proc"]["comm"] == "igcompat-exec")
        .unwrap_or_else(|| panic!("no event; stderr: {}", run.stderr_text()));
    assert_eq!(e["exepath"], "", "{e}");
    assert_eq!(e["cwd"], "", "{e}");
    assert_eq!(e["ctime"], ctime, "{e}");
    let (status, _, stderr) = run.stop();
    assert!(status.success() || status.code().is_none(), "{stderr}");
}
