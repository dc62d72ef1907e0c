//! Hostile and mistaken inputs to `ig image export` / `ig image import` and an interrupted
//! `ig image build` (issue 17, items 1, 6, 7 and the archive messages of 8): the export path
//! being a device, FIFO, symlink or directory; archives this test writes by hand that lie about
//! sizes, lack blobs, carry huge names, duplicate tags or terminal escapes, are cut short or
//! gzip-compressed; SIGTERM and SIGINT while clang runs.

mod common;
mod containers_common;
mod daemon_common;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{stderr_of, stdout_of, Ig};
use sha2::{Digest, Sha256};

const GADGET_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gadgets/trace_open");
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const HOSTILE: &str = "registry.invalid/hostile/x:v1";

fn ok(ig: &Ig, args: &[&str]) -> Output {
    let o = ig.output(args);
    assert!(
        o.status.success(),
        "ig {args:?} failed:\n{}{}",
        stdout_of(&o),
        stderr_of(&o)
    );
    o
}

/// Runs `ig`, expecting exit code 1; returns stderr.
fn fails(ig: &Ig, args: &[&str]) -> String {
    let o = ig.output(args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "ig {args:?}:\n{}{}",
        stdout_of(&o),
        stderr_of(&o)
    );
    stderr_of(&o)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success());
}

/// The bytes `ig image export trace_exec` writes to a regular file (export is deterministic).
fn reference_export(ig: &Ig, dir: &Path) -> Vec<u8> {
    let p = dir.join("reference.tar");
    ok(ig, &["image", "export", "trace_exec", s(&p)]);
    std::fs::read(&p).expect("read export")
}

fn tar_members(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(bytes);
    for e in archive.entries().expect("a tar") {
        let e = e.expect("a tar entry");
        names.push(e.path().expect("path").display().to_string());
    }
    names
}

// ---------------------------------------------------------------------------------------------
// Item 1: what the export path is.

#[test]
fn export_to_dev_null_keeps_the_device() {
    let ig = Ig::new();
    // The literal /dev/null, in a private mount namespace whose /dev is a fresh tmpfs holding
    // its own null device: whatever ig does to it, the machine's /dev/null is not at stake.
    let script = r#"mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 &&
        "$IG" image export trace_exec /dev/null; rc=$?; stat -c '%F %a' /dev/null; exit $rc"#;
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("IG", common::ig_bin())
        .env("IG_STORE", ig.store.path())
        .output()
        .expect("unshare");
    assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o).trim(), "character special file 666");
    assert!(stderr_of(&o).contains("to /dev/null"), "{}", stderr_of(&o));

    // A character device node of its own (the null device) in a directory.
    let dir = tempfile::tempdir().expect("tempdir");
    let null = dir.path().join("null");
    let st = Command::new("mknod")
        .args([s(&null), "c", "1", "3"])
        .status()
        .expect("mknod");
    assert!(st.success());
    ok(&ig, &["image", "export", "trace_exec", s(&null)]);
    let meta = std::fs::symlink_metadata(&null).expect("stat");
    assert!(meta.file_type().is_char_device(), "{meta:?}");
    assert_eq!(meta.rdev(), libc::makedev(1, 3));
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
}

#[test]
fn export_to_a_fifo_feeds_its_reader() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = reference_export(&ig, dir.path());
    let fifo = dir.path().join("pipe");
    mkfifo(&fifo);
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::open(fifo)
                .expect("open fifo")
                .read_to_end(&mut bytes)
                .expect("read fifo");
            let _ = tx.send(bytes);
        });
    }
    let o = ok(&ig, &["image", "export", "trace_exec", s(&fifo)]);
    assert!(stderr_of(&o).starts_with("Exported 1 image(s)"));
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the FIFO's reader got nothing although ig said it exported");
    assert!(got == expected, "the reader got {} bytes", got.len());
    assert!(tar_members(&got).contains(&"index.json".to_string()));
    assert!(std::fs::symlink_metadata(&fifo)
        .expect("stat")
        .file_type()
        .is_fifo());
    // What the reader got imports.
    let got_path = dir.path().join("got.tar");
    std::fs::write(&got_path, &got).expect("write");
    let other = Ig::new();
    let out = stdout_of(&ok(&other, &["image", "import", s(&got_path)]));
    assert_eq!(out, "Imported ghcr.io/ig-rs/gadget/trace_exec:latest\n");
}

#[test]
fn export_through_a_symlink_writes_its_target() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = reference_export(&ig, dir.path());
    let target = dir.path().join("kept/gadgets.tar");
    std::fs::create_dir(dir.path().join("kept")).expect("mkdir");
    std::fs::write(&target, "old").expect("write");
    let link = dir.path().join("link.tar");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    ok(&ig, &["image", "export", "trace_exec", s(&link)]);
    assert!(std::fs::symlink_metadata(&link)
        .expect("lstat")
        .file_type()
        .is_symlink());
    assert!(std::fs::read(&target).expect("read") == expected);

    // A link to nothing is refused, and nothing is created.
    let dangling = dir.path().join("dangling.tar");
    let nowhere = dir.path().join("nowhere/x.tar");
    std::os::unix::fs::symlink(&nowhere, &dangling).expect("symlink");
    let err = fails(&ig, &["image", "export", "trace_exec", s(&dangling)]);
    assert_eq!(
        err,
        format!(
            "ig: error: {} is a symbolic link to {}, which does not exist: not writing through it\n",
            dangling.display(),
            nowhere.display()
        )
    );
    assert!(!nowhere.exists());
}

#[test]
fn export_to_a_regular_file_replaces_it_atomically() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = reference_export(&ig, dir.path());
    let file = dir.path().join("gadgets.tar");
    std::fs::write(&file, "old contents").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let before = std::fs::metadata(&file).expect("stat").ino();
    ok(&ig, &["image", "export", "trace_exec", s(&file)]);
    let meta = std::fs::metadata(&file).expect("stat");
    assert!(std::fs::read(&file).expect("read") == expected);
    assert_ne!(meta.ino(), before, "written beside and renamed over");
    assert_eq!(meta.permissions().mode() & 0o777, 0o640, "mode kept");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");

    // A new file gets the usual mode (0666 less the umask), not a root-only one.
    let new = dir.path().join("new.tar");
    let o = Command::new("sh")
        .args([
            "-c",
            "umask 022 && exec \"$0\" image export trace_exec \"$1\"",
        ])
        .arg(common::ig_bin())
        .arg(&new)
        .env("IG_STORE", ig.store.path())
        .output()
        .expect("sh");
    assert!(o.status.success(), "{}", stderr_of(&o));
    let mode = std::fs::metadata(&new).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o644);

    // A missing directory is named, once.
    let err = fails(&ig, &["image", "export", "trace_exec", "no-such-dir/x.tar"]);
    assert_eq!(
        err,
        "ig: error: no-such-dir: No such file or directory (os error 2)\n"
    );

    // A directory is refused, by name.
    let err = fails(&ig, &["image", "export", "trace_exec", s(dir.path())]);
    assert_eq!(
        err,
        format!(
            "ig: error: {} is a directory: refusing to write into it\n",
            dir.path().display()
        )
    );
}

#[test]
fn daemon_output_file_on_a_device_or_fifo_is_written_through() {
    let d = daemon_common::Daemon::start(&["--runtimes", "none"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let null = dir.path().join("null");
    let st = Command::new("mknod")
        .args([s(&null), "c", "1", "3"])
        .status()
        .expect("mknod");
    assert!(st.success());
    let run = |name: &str, file: &Path| {
        d.ig(&[
            "run",
            "trace_exec",
            "--detach",
            "--name",
            name,
            "--host",
            "--output-file",
            s(file),
            "--output-max-size",
            "1",
            "--output-max-backups",
            "2",
        ])
    };
    let o = run("tonull", &null);
    assert!(o.status.success(), "{}", stderr_of(&o));
    // ~650 bytes an event: 3000 execs are past the 1 MiB at which a file would rotate.
    let st = Command::new("sh")
        .args(["-c", "for i in $(seq 3000); do /bin/true $i; done"])
        .status()
        .expect("sh");
    assert!(st.success());
    let events = || {
        let o = d.ig(&["list", "-o", "json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
        list.iter()
            .find(|i| i["name"] == "tonull")
            .and_then(|i| i["events"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        daemon_common::wait_until(Duration::from_secs(30), || events() >= 3000),
        "{} events",
        events()
    );
    let meta = std::fs::symlink_metadata(&null).expect("stat");
    assert!(meta.file_type().is_char_device(), "{meta:?}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("null")]);

    // A FIFO nobody reads is refused at once rather than hanging the daemon.
    let fifo = dir.path().join("pipe");
    mkfifo(&fifo);
    let o = run("tofifo", &fifo);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr_of(&o).contains(&format!("{} is a FIFO that nobody reads", fifo.display())),
        "{}",
        stderr_of(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// Hand-written archives.

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hexof(d: &str) -> &str {
    d.trim_start_matches("sha256:")
}

/// A tar of `members` (name, bytes), as GNU tar writes them; names are written raw, so they
/// may hold anything.
fn tar_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(bytes);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn desc(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest(bytes), "size": bytes.len()})
}

/// A small image in an OCI layout: config, one layer, a manifest, tagged `HOSTILE`.
struct Layout {
    config: Vec<u8>,
    layer: Vec<u8>,
    /// Size the manifest declares for the layer.
    layer_size: u64,
    include_layer: bool,
    /// `index.json` entries: (ref name, descriptor of the manifest).
    extra_tags: Vec<(String, serde_json::Value)>,
    ref_name: String,
}

impl Layout {
    fn new() -> Layout {
        let layer = b"\x7fELF not really an object: import does not look inside".to_vec();
        Layout {
            config: b"name: hostile\n".to_vec(),
            layer_size: layer.len() as u64,
            layer,
            include_layer: true,
            extra_tags: Vec::new(),
            ref_name: HOSTILE.to_string(),
        }
    }

    fn manifest(&self) -> Vec<u8> {
        let mut layer = desc("application/vnd.gadget.ebpf.program.v1+binary", &self.layer);
        layer["size"] = self.layer_size.into();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": desc("application/vnd.gadget.config.v1+yaml", &self.config),
            "layers": [layer],
        }))
        .expect("json")
    }

    fn tar(&self) -> Vec<u8> {
        let manifest = self.manifest();
        let mut top = desc(MANIFEST, &manifest);
        top["annotations"] = serde_json::json!({ REF_NAME: self.ref_name });
        let mut manifests = vec![top];
        for (name, d) in &self.extra_tags {
            let mut d = d.clone();
            d["annotations"] = serde_json::json!({ REF_NAME: name });
            manifests.push(d);
        }
        let index = serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}),
        )
        .expect("json");
        let mut members = vec![
            (
                "oci-layout".to_string(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".to_string(), index),
        ];
        let mut blobs = vec![self.config.clone(), manifest];
        if self.include_layer {
            blobs.push(self.layer.clone());
        }
        for b in blobs {
            members.push((format!("blobs/sha256/{}", hexof(&digest(&b))), b));
        }
        tar_of(&members)
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.tar()).expect("write archive");
        p
    }
}

fn stored_blobs(ig: &Ig) -> Vec<String> {
    std::fs::read_dir(ig.store.path().join("blobs/sha256"))
        .map(|d| {
            d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_honest_hand_written_archive_imports_and_exports() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Layout::new().write(dir.path(), "honest.tar");
    let out = stdout_of(&ok(&ig, &["image", "import", s(&p)]));
    assert_eq!(out, format!("Imported {HOSTILE}\n"));
    let again = dir.path().join("again.tar");
    ok(&ig, &["image", "export", HOSTILE, s(&again)]);
    let other = Ig::new();
    ok(&other, &["image", "import", s(&again)]);
}

// ---------------------------------------------------------------------------------------------
// Item 6: declared sizes and reference names.

#[test]
fn import_refuses_lying_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    for lie in [10u64, 1 << 63, 1_000_000_000_000_000_000] {
        let ig = Ig::new();
        let mut layout = Layout::new();
        layout.layer_size = lie;
        let p = layout.write(dir.path(), "lie.tar");
        let err = fails(&ig, &["image", "import", s(&p)]);
        assert_eq!(
            err,
            format!(
                "ig: error: archive {}: image {HOSTILE}: layer {} is declared as {lie} bytes but has {}\n",
                p.display(),
                digest(&layout.layer),
                layout.layer.len()
            )
        );
        assert!(!stdout_of(&ok(&ig, &["image", "list"])).contains("hostile"));
        assert!(
            !stored_blobs(&ig).contains(&hexof(&digest(&layout.layer)).to_string()),
            "nothing of a refused archive is stored"
        );
    }

    // The tag's own descriptor lies.
    let ig = Ig::new();
    let layout = Layout::new();
    let mut tar_layout = Layout::new();
    let manifest = layout.manifest();
    let mut lying = desc(MANIFEST, &manifest);
    lying["size"] = (1u64 << 63).into();
    tar_layout.extra_tags = vec![("registry.invalid/hostile/y:v1".into(), lying)];
    let p = tar_layout.write(dir.path(), "top.tar");
    let err = fails(&ig, &["image", "import", s(&p)]);
    assert!(
        err.contains(&format!(
            "image registry.invalid/hostile/y:v1: manifest {} is declared as 9223372036854775808 bytes but has {}",
            digest(&manifest),
            manifest.len()
        )),
        "{err}"
    );
}

#[test]
fn import_refuses_names_beyond_dockers_grammar() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new();
    layout.ref_name = format!("registry.invalid/{}", "a".repeat(100_000));
    let p = layout.write(dir.path(), "long.tar");
    let err = fails(&ig, &["image", "import", s(&p)]);
    assert!(
        err.contains("name is 100017 characters long; at most 255 are allowed"),
        "{err}"
    );
    assert!(
        err.len() < 400,
        "the name is not echoed whole: {} bytes",
        err.len()
    );

    layout.ref_name = format!("registry.invalid/hostile/x:{}", "t".repeat(129));
    let p = layout.write(dir.path(), "tag.tar");
    let err = fails(&ig, &["image", "import", s(&p)]);
    assert!(
        err.contains("tag is 129 characters long; at most 128 are allowed"),
        "{err}"
    );

    layout.ref_name = "registry.invalid/a..b/x:v1".into();
    let p = layout.write(dir.path(), "grammar.tar");
    let err = fails(&ig, &["image", "import", s(&p)]);
    assert!(
        err.contains("repository must be lowercase letters and digits, separated by"),
        "{err}"
    );
    assert!(!stdout_of(&ok(&ig, &["image", "list"])).contains("hostile"));

    // The same limits on the command line.
    let long = format!("registry.invalid/{}", "a".repeat(300));
    let err = fails(&ig, &["image", "tag", "trace_exec", &long]);
    assert!(err.contains("name is 317 characters long"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Item 8: archive messages.

#[test]
fn a_blob_missing_from_the_archive_is_named() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new();
    layout.include_layer = false;
    let p = layout.write(dir.path(), "partial.tar");
    let err = fails(&ig, &["image", "import", s(&p)]);
    assert_eq!(
        err,
        format!(
            "ig: error: archive {}: image {HOSTILE} needs blob {}, which is missing from the archive (and from the local store)\n",
            p.display(),
            digest(&layout.layer)
        )
    );
}

#[test]
fn a_truncated_archive_is_called_truncated() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let full = reference_export(&ig, dir.path());
    // Where each member's header starts, and its size.
    let mut members = Vec::new();
    let mut archive = tar::Archive::new(full.as_slice());
    for e in archive.entries().expect("tar") {
        let e = e.expect("entry");
        let name = e.path().expect("path").display().to_string();
        members.push((name, e.raw_header_position(), e.size()));
    }
    let (name, at, size) = members
        .iter()
        .max_by_key(|(_, _, size)| *size)
        .cloned()
        .expect("a member");
    let importer = Ig::new();
    let cut = |len: u64, file: &str| {
        let p = dir.path().join(file);
        std::fs::write(&p, &full[..len as usize]).expect("write");
        (fails(&importer, &["image", "import", s(&p)]), p)
    };

    // Inside a member's data.
    let (err, p) = cut(at + 512 + size / 2, "data.tar");
    assert_eq!(
        err,
        format!(
            "ig: error: archive {} is truncated: {name} ends after {} of its {size} bytes\n",
            p.display(),
            size / 2
        )
    );

    // Inside a header.
    let (err, p) = cut(at + 100, "header.tar");
    assert_eq!(
        err,
        format!(
            "ig: error: archive {} is truncated: it ends after {} bytes, inside a tar header (failed to read entire block)\n",
            p.display(),
            at + 100
        )
    );

    // Between members: index.json and oci-layout come last.
    let (_, index_at, _) = members
        .iter()
        .find(|(n, _, _)| n == "index.json")
        .cloned()
        .expect("index.json");
    let (err, p) = cut(index_at, "boundary.tar");
    assert_eq!(
        err,
        format!(
            "ig: error: archive {} is truncated: it ends after {index_at} bytes without tar's end-of-archive blocks, and has no index.json\n",
            p.display()
        )
    );
    assert!(
        stdout_of(&ok(&importer, &["image", "list"]))
            .lines()
            .count()
            <= 1
    );

    // Nothing at all.
    let (err, p) = cut(0, "empty.tar");
    assert_eq!(
        err,
        format!(
            "ig: error: archive {}: empty: not a tar archive\n",
            p.display()
        )
    );
}

#[test]
fn a_compressed_archive_says_how_to_decompress() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    reference_export(&ig, dir.path());
    let st = Command::new("gzip")
        .arg("-k")
        .arg(dir.path().join("reference.tar"))
        .status()
        .expect("gzip");
    assert!(st.success());
    let p = dir.path().join("reference.tar.gz");
    let err = fails(&ig, &["image", "import", s(&p)]);
    assert_eq!(
        err,
        format!(
            "ig: error: archive {} is gzip-compressed: gunzip it first\n",
            p.display()
        )
    );
    // From stdin too.
    let o = ig
        .cmd(&["image", "import", "-"])
        .stdin(std::fs::File::open(&p).expect("open"))
        .output()
        .expect("ig");
    assert_eq!(
        stderr_of(&o),
        "ig: error: archive - is gzip-compressed: gunzip it first\n"
    );
}

#[test]
fn a_tag_listed_twice_for_different_images_is_refused() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new();
    let first = digest(&layout.manifest());
    let other_manifest = Layout {
        config: b"name: other\n".to_vec(),
        ..Layout::new()
    }
    .manifest();
    layout.extra_tags = vec![(HOSTILE.into(), desc(MANIFEST, &other_manifest))];
    let p = layout.write(dir.path(), "twice.tar");
    let err = fails(&ig, &["image", "import", s(&p)]);
    assert_eq!(
        err,
        format!(
            "ig: error: archive {}: tag {HOSTILE} appears twice, for {first} and {}: refusing the ambiguous archive\n",
            p.display(),
            digest(&other_manifest)
        )
    );
    assert!(!stdout_of(&ok(&ig, &["image", "list"])).contains("hostile"));

    // The same image listed twice (also under a shorter spelling of the name) is one tag.
    let mut layout = Layout::new();
    let same = desc(MANIFEST, &layout.manifest());
    layout.extra_tags = vec![
        (HOSTILE.into(), same.clone()),
        ("registry.invalid/hostile/x:v1".into(), same),
    ];
    let p = layout.write(dir.path(), "same.tar");
    let out = stdout_of(&ok(&ig, &["image", "import", s(&p)]));
    assert_eq!(out, format!("Imported {HOSTILE}\n"));
}

#[test]
fn archive_text_reaches_the_terminal_escaped() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    // A member name holding an OSC title sequence and a bidi override.
    let evil = "blobs/sha256/\x1b]0;pwned\x07\u{202e}rat".to_string();
    let mut members = vec![(evil, b"x".to_vec())];
    members.push(("index.json".into(), b"{}".to_vec()));
    let p = dir.path().join("evil.tar");
    std::fs::write(&p, tar_of(&members)).expect("write");
    let err = fails(&ig, &["image", "import", s(&p)]);
    assert_eq!(
        err,
        format!(
            "ig: error: archive {}: blobs/sha256/\\x1b]0;pwned\\x07\\u202erat is not named by a sha256 digest\n",
            p.display()
        )
    );

    // A tag with escapes and a bidi override in index.json.
    let mut layout = Layout::new();
    layout.ref_name = "registry.invalid/x\u{9b}2J\u{202e}:v1".into();
    let p = layout.write(dir.path(), "evil-tag.tar");
    let err = fails(&ig, &["image", "import", s(&p)]);
    assert!(
        !err.contains('\u{9b}') && !err.contains('\u{202e}'),
        "{err:?}"
    );
    assert!(
        // Debug-quoted by the reference parser, or escaped by ig's rule: never raw.
        err.contains("\\u{9b}2J\\u{202e}") || err.contains("\\x9b2J\\u202e"),
        "{err}"
    );

    // Bytes of a garbage header (not a tar at all).
    let p = dir.path().join("garbage.tar");
    let mut garbage = vec![0x1bu8; 512];
    garbage[..4].copy_from_slice(b"\x1b[2J");
    std::fs::write(&p, garbage).expect("write");
    let err = fails(&ig, &["image", "import", s(&p)]);
    assert!(!err.contains('\x1b'), "{err:?}");
    assert!(
        err.starts_with(&format!(
            "ig: error: archive {}: not a tar archive (numeric field was not a number: \\x1b\\x1b",
            p.display()
        )),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 7: an interrupted build leaves nothing behind.

/// The pids of `pid`'s children.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn a_build_interrupted_while_clang_runs_leaves_no_files() {
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let ig = Ig::new();
        let tmp = tempfile::tempdir().expect("private TMPDIR");
        let mut child = ig
            .cmd(&["image", "build", GADGET_DIR, "-t", "interrupted:v1"])
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ig");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(60);
        let clang = loop {
            if let Some(c) = children(pid)
                .into_iter()
                .find(|c| comm(*c).starts_with("clang"))
            {
                break c;
            }
            assert!(Instant::now() < deadline, "clang never ran under ig");
            assert!(child.try_wait().expect("wait").is_none(), "ig ended first");
            std::thread::sleep(Duration::from_millis(5));
        };
        // The build directory exists while clang runs.
        assert_eq!(std::fs::read_dir(tmp.path()).expect("ls").count(), 1);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, sig) };
        let status = child.wait().expect("wait ig");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        assert_eq!(status.code(), Some(code), "{stderr}");
        assert_eq!(stderr, format!("ig: build interrupted by signal {sig}\n"));
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("ls")
            .map(|e| e.expect("entry").path())
            .collect();
        assert!(left.is_empty(), "left in TMPDIR: {left:?}");
        assert!(
            !Path::new(&format!("/proc/{clang}")).exists() || comm(clang) != "clang",
            "clang {clang} still runs"
        );
        let list = stdout_of(&ok(&ig, &["image", "list"]));
        assert!(!list.contains("interrupted"), "{list}");
    }
}

/// A cause the message already quotes is not printed a second time.
#[test]
fn an_error_names_its_cause_once() {
    let ig = Ig::new();
    let err = fails(&ig, &["image", "import", "/nonexistent/archive.tar"]);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
