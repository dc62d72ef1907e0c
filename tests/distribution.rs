//! Gadget distribution against real parts: Debian's docker-registry (plain HTTP, and htpasswd
//! auth), skopeo, the kernel (`ig run` must see events of a pulled image).
//!
//! Tests marked "needs `ig run` wiring" exercise `ig run --pull/--verify-image/--public-key/
//! --insecure-registries/--allowed-gadgets`.

mod common;
#[path = "common/dist.rs"]
mod dist;

use std::process::Command;

use dist::{run_sees_open, Dist, Registry};

fn index_of(d: &Dist, reference: &str) -> serde_json::Value {
    let store = ig::oci::Store::open(d.store()).expect("store");
    let desc = store.resolve(reference).expect("index.json").expect("tag");
    serde_json::from_slice(&store.blob(&desc.digest).expect("blob")).expect("json")
}

fn skopeo(args: &[&str]) -> String {
    let o = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn push_remove_pull_run_on_plain_http_registry() {
    let reg = Registry::start();
    let d = Dist::new();
    let r = reg.reference("demo/trace_open:v1");
    let digest = d.build(&r);

    // HTTPS is the default: a plain-HTTP registry needs the flag, and the error says so.
    let err = d.fail(&["image", "push", &r]);
    assert!(
        err.contains(&reg.host) && err.contains("--insecure-registries"),
        "{err}"
    );
    let out = d.ok(&["image", "push", &r, "--insecure-registries", &reg.host]);
    assert!(out.contains(&digest), "{out}");

    // Plain OCI, as any tool sees it.
    let raw: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{r}"),
    ]))
    .expect("index JSON");
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(
        raw["annotations"]["org.opencontainers.image.title"],
        "trace_open"
    );
    let manifests = raw["manifests"].as_array().expect("manifests");
    let archs: Vec<&str> = manifests
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    assert!(
        archs.contains(&"amd64") && archs.contains(&"arm64"),
        "{archs:?}"
    );
    for m in manifests {
        let at = format!(
            "docker://{}@{}",
            reg.reference("demo/trace_open"),
            m["digest"].as_str().expect("digest")
        );
        let man: serde_json::Value =
            serde_json::from_str(&skopeo(&["inspect", "--raw", "--tls-verify=false", &at]))
                .expect("manifest JSON");
        assert_eq!(man["artifactType"], "application/vnd.gadget.v1+binary");
        assert_eq!(
            man["config"]["mediaType"],
            "application/vnd.gadget.config.v1+yaml"
        );
        assert_eq!(
            man["layers"][0]["mediaType"],
            "application/vnd.gadget.ebpf.program.v1+binary"
        );
        assert!(man["annotations"]["org.opencontainers.image.created"].is_string());
    }

    d.ok(&["image", "remove", &r]);
    assert!(!d.ok(&["image", "list"]).contains("demo/trace_open"));
    let out = d.ok(&["image", "pull", &r, "--insecure-registries", &reg.host]);
    assert!(
        out.contains(&digest) && out.contains("amd64") && out.contains("arm64"),
        "{out}"
    );
    run_sees_open(&d.ig, &r, &["--verify-image=false"]).expect("events from the pulled gadget");

    // Clear messages for a missing image and an unreachable registry.
    let err = d.fail(&[
        "image",
        "pull",
        &reg.reference("demo/nope:v1"),
        "--insecure-registries",
        &reg.host,
    ]);
    assert!(
        err.contains("not found (404)") && err.contains("demo/nope"),
        "{err}"
    );
    let err = d.fail(&[
        "image",
        "pull",
        "127.0.0.1:1/demo/x:v1",
        "--insecure-registries",
        "127.0.0.1:1",
    ]);
    assert!(
        err.contains("127.0.0.1:1") && err.contains("cannot connect"),
        "{err}"
    );
}

#[test]
fn login_push_pull_run_on_registry_with_auth() {
    let reg = Registry::with_auth("alice", "s3cret-pw");
    let d = Dist::new();
    let r = reg.reference("team/trace_open:v1");
    d.build(&r);
    let insecure = ["--insecure-registries", reg.host.as_str()];

    let err = d.fail(&[&["image", "push", &r][..], &insecure].concat());
    assert!(
        err.contains("requires authentication") && err.contains(&format!("ig login {}", reg.host)),
        "{err}"
    );

    let login = |pw: &str| {
        d.with_stdin(
            &[
                &["login", &reg.host, "-u", "alice", "--password-stdin"][..],
                &insecure,
            ]
            .concat(),
            pw,
        )
    };
    let o = login("wrong\n");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("authentication failed") && err.contains("alice") && err.contains(&reg.host),
        "{err}"
    );
    assert!(login("s3cret-pw\n").status.success());
    let config = std::fs::read_to_string(d.home.path().join(".config/ig/config.json"))
        .expect("ig config.json");
    assert!(config.contains(&reg.host), "{config}");

    d.ok(&[&["image", "push", &r][..], &insecure].concat());
    d.ok(&["image", "remove", &r]);
    d.ok(&[&["image", "pull", &r][..], &insecure].concat());
    run_sees_open(&d.ig, &r, &["--verify-image=false"])
        .expect("events from the gadget pulled with credentials");

    // Docker's config.json is read too; a wrong password there gives the same clear error.
    d.ok(&["logout", &reg.host]);
    let docker = d.home.path().join(".docker");
    std::fs::create_dir_all(&docker).expect("mkdir");
    let bad = base64_of("alice:nope");
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{bad}"}}}}}}"#, reg.host),
    )
    .expect("write docker config");
    let err = d.fail(&[&["image", "pull", &r][..], &insecure].concat());
    assert!(
        err.contains("authentication failed") && err.contains("\"alice\""),
        "{err}"
    );
    let good = base64_of("alice:s3cret-pw");
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{good}"}}}}}}"#, reg.host),
    )
    .expect("write docker config");
    d.ok(&[&["image", "pull", &r][..], &insecure].concat());
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn signatures_travel_and_are_checked() {
    let reg = Registry::start();
    let d = Dist::new();
    let insecure = ["--insecure-registries", reg.host.as_str()];
    let signed = reg.reference("sig/trace_open:v1");
    let unsigned = reg.reference("sig/trace_open_unsigned:v1");
    let digest = d.build(&signed);
    d.ok(&["image", "tag", &signed, &unsigned]);
    let (key_a, pub_a) = d.keygen("a");
    let (_key_b, pub_b) = d.keygen("b");
    d.ok(&["image", "sign", &signed, "--key", &key_a]);
    d.ok(&[&["image", "push", &signed][..], &insecure].concat());
    d.ok(&[&["image", "push", &unsigned][..], &insecure].concat());

    // The signature is a cosign-style manifest in the registry.
    let sig_tag = format!(
        "{}:{}.sig",
        reg.reference("sig/trace_open"),
        digest.replace(':', "-")
    );
    let sig: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{sig_tag}"),
    ]))
    .expect("signature manifest");
    assert_eq!(
        sig["layers"][0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert!(sig["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"].is_string());

    // A fresh machine pulls image and signature.
    let other = Dist::new();
    other.ok(&[&["image", "pull", &signed][..], &insecure].concat());
    other.ok(&[&["image", "pull", &unsigned][..], &insecure].concat());
    let out = other.ok(&["image", "verify", &signed, "--public-key", &pub_a]);
    assert!(out.contains("Verified") && out.contains(&digest), "{out}");
    let err = other.fail(&["image", "verify", &signed, "--public-key", &pub_b]);
    assert!(
        err.contains(&signed) && err.contains(&digest) && err.contains(&pub_b),
        "{err}"
    );
    let err = other.fail(&["image", "verify", &unsigned, "--public-key", &pub_a]);
    assert!(
        err.contains("not signed") && err.contains(&unsigned) && err.contains(&digest),
        "{err}"
    );
    assert!(err.contains(&pub_a), "{err}");
    // Removing the image drops its now orphaned signature too.
    other.ok(&["image", "remove", &signed]);
    let store = ig::oci::Store::open(other.store()).expect("store");
    assert!(store
        .tags()
        .expect("tags")
        .iter()
        .all(|(n, _)| !n.ends_with(".sig")));
}

#[test]
fn run_verifies_signatures_before_loading() {
    let d = Dist::new();
    let signed = "127.0.0.1:5999/sig/trace_open:v1";
    // Same content in another repository: the signature (bound to the repository and digest,
    // as cosign's) does not cover it.
    let unsigned = "127.0.0.1:5999/other/trace_open:unsigned";
    let digest = d.build(signed);
    d.ok(&["image", "tag", signed, unsigned]);
    let (key_a, pub_a) = d.keygen("a");
    let (_key_b, pub_b) = d.keygen("b");
    d.ok(&["image", "sign", signed, "--key", &key_a]);

    run_sees_open(&d.ig, signed, &["--public-key", &pub_a]).expect("signed image runs with key A");
    let err = d.fail(&[
        "run",
        signed,
        "--host",
        "--timeout",
        "3",
        "--public-key",
        &pub_b,
    ]);
    assert!(
        err.contains(signed) && err.contains(&digest) && err.contains(&pub_b),
        "{err}"
    );
    let err = d.fail(&[
        "run",
        unsigned,
        "--host",
        "--timeout",
        "3",
        "--public-key",
        &pub_a,
    ]);
    assert!(
        err.contains(unsigned) && err.contains("not signed"),
        "{err}"
    );
    run_sees_open(&d.ig, unsigned, &["--verify-image=false"])
        .expect("opt-out runs unsigned images");
}

#[test]
fn tampered_blobs_are_refused() {
    let reg = Registry::start();
    let d = Dist::new();
    let r = reg.reference("tamper/trace_open:v1");
    d.build(&r);
    d.ok(&["image", "push", &r, "--insecure-registries", &reg.host]);

    // In the local store: the BPF object's blob no longer matches its digest.
    let store = ig::oci::Store::open(d.store()).expect("store");
    let index = index_of(&d, &r);
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&store.blob(&manifest_digest).expect("manifest")).expect("json");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let path = store.blob_path(&layer).expect("path");
    let mut bytes = std::fs::read(&path).expect("read blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("tamper");
    let err = d.fail(&["run", &r, "--host", "--timeout", "3"]);
    assert!(err.contains(&layer) && err.contains("corrupted"), "{err}");

    // In the registry: a fresh pull detects it.
    let reg_blob = reg.blob_file(&layer);
    let mut bytes = std::fs::read(&reg_blob).expect("registry blob");
    bytes[0] ^= 0xff;
    std::fs::write(&reg_blob, &bytes).expect("tamper registry");
    let fresh = Dist::new();
    let err = fresh.fail(&["image", "pull", &r, "--insecure-registries", &reg.host]);
    assert!(
        err.contains(&layer) && err.contains("does not match its digest"),
        "{err}"
    );
    assert!(!fresh.ok(&["image", "list"]).contains("tamper/trace_open"));
}

#[test]
fn export_import_runs_without_registry() {
    let d = Dist::new();
    let r1 = "registry.invalid/air/trace_open:v1";
    let r2 = "registry.invalid/air/trace_open:v2";
    let digest = d.build(r1);
    d.ok(&["image", "tag", r1, r2]);
    let (key, public) = d.keygen("k");
    d.ok(&["image", "sign", r1, "--key", &key]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (f1, f2) = (dir.path().join("one.tar"), dir.path().join("two.tar"));
    let (f1s, f2s) = (f1.to_str().expect("utf-8"), f2.to_str().expect("utf-8"));
    d.ok(&["image", "export", r1, r2, f1s]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    d.ok(&["image", "export", r2, r1, f2s]);
    let (b1, b2) = (
        std::fs::read(&f1).expect("read"),
        std::fs::read(&f2).expect("read"),
    );
    assert!(b1 == b2, "two exports of the same images differ");

    let air = Dist::new();
    let out = air.ok(&["image", "import", f1s]);
    assert!(out.contains(r1) && out.contains(r2), "{out}");
    let list = air.ok(&["image", "list", "--no-trunc"]);
    assert!(
        list.contains(digest.trim_start_matches("sha256:")),
        "{list}"
    );
    assert!(!list.contains(".sig"), "{list}");
    air.ok(&["image", "verify", r1, "--public-key", &public]);
    run_sees_open(&air.ig, r1, &["--verify-image=false"]).expect("imported gadget runs");

    // An archive with a corrupted blob is refused as a whole.
    let mut bad = b1.clone();
    let at = bad
        .windows(4)
        .position(|w| w == b"\x7fELF")
        .expect("an ELF object in the archive");
    bad[at + 100] ^= 0xff;
    let bad_path = dir.path().join("bad.tar");
    std::fs::write(&bad_path, bad).expect("write");
    let empty = Dist::new();
    let err = empty.fail(&["image", "import", bad_path.to_str().expect("utf-8")]);
    assert!(err.contains("does not match its digest"), "{err}");
    assert!(!empty.ok(&["image", "list"]).contains("air/trace_open"));
}

#[test]
fn skopeo_copies_both_ways() {
    let reg = Registry::start();
    let d = Dist::new();
    let r = reg.reference("sk/trace_open:v1");
    d.build(&r);
    let store_dir = d.store().to_str().expect("utf-8").to_string();
    let manifest_digests = |index: &serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .map(|m| m["digest"].as_str().expect("digest").to_string())
            .collect();
        v.sort();
        v
    };
    let ours = manifest_digests(&index_of(&d, &r));

    // Our local store → registry, with skopeo.
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{store_dir}:{r}"),
        &format!("docker://{r}"),
    ]);
    let fresh = Dist::new();
    fresh.ok(&["image", "pull", &r, "--insecure-registries", &reg.host]);
    assert_eq!(manifest_digests(&index_of(&fresh, &r)), ours);
    run_sees_open(&fresh.ig, &r, &["--verify-image=false"]).expect("gadget copied by skopeo runs");

    // Registry (pushed by ig) → a store written by skopeo, which ig then runs from.
    let r2 = reg.reference("sk/trace_open:v2");
    d.ok(&["image", "tag", &r, &r2]);
    d.ok(&["image", "push", &r2, "--insecure-registries", &reg.host]);
    let target = Dist::new();
    let target_dir = target.store().to_str().expect("utf-8").to_string();
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{r2}"),
        &format!("oci:{target_dir}:{r2}"),
    ]);
    assert_eq!(manifest_digests(&index_of(&target, &r2)), ours);
    run_sees_open(&target.ig, &r2, &["--verify-image=false"])
        .expect("gadget copied into the store by skopeo runs");
}

/// A command either succeeded or failed only because a tag it named was removed meanwhile.
fn race_only(o: &std::process::Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success()
            || err.contains("not in the local store")
            || err.contains("not found in the local store"),
        "{err}"
    );
}

#[test]
fn concurrent_pull_tag_remove_keep_the_store_consistent() {
    let reg = Registry::start();
    let d = Dist::new();
    let r = reg.reference("conc/trace_open:v1");
    d.build(&r);
    d.ok(&["image", "push", &r, "--insecure-registries", &reg.host]);
    let shared = Dist::new();
    std::thread::scope(|s| {
        for worker in 0..4 {
            let (shared, r, host) = (&shared, &r, &reg.host);
            s.spawn(move || {
                for round in 0..4 {
                    let mine = format!("{host}/conc/copy{worker}:r{round}");
                    shared.ok(&["image", "pull", r, "--insecure-registries", host]);
                    // The shared tag may vanish under us (another worker removes it): that
                    // and only that is an acceptable failure.
                    let tagged = shared.output(&["image", "tag", r, &mine]);
                    race_only(&tagged);
                    let victims: Vec<&str> = if round % 2 == 0 {
                        vec![r, &mine]
                    } else {
                        vec![&mine]
                    };
                    let mut args = vec!["image", "remove"];
                    args.extend(victims);
                    race_only(&shared.output(&args));
                }
            });
        }
    });
    // Every remaining tag is complete and intact.
    let store = ig::oci::Store::open(shared.store()).expect("store");
    let tags = store.tags().expect("tags");
    assert!(!tags.is_empty());
    for (name, _) in &tags {
        let reference = ig::oci::Reference::parse(name).expect("reference");
        ig::oci::image::read_gadget(&store, &reference, "amd64")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Removing everything leaves no blob behind.
    let names: Vec<String> = tags.into_iter().map(|(n, _)| n).collect();
    let mut args = vec!["image", "remove"];
    args.extend(names.iter().map(String::as_str));
    shared.ok(&args);
    let left = std::fs::read_dir(shared.store().join("blobs/sha256"))
        .expect("blobs")
        .count();
    assert_eq!(left, 0, "blobs left after removing every image");
}

#[test]
fn run_pull_policy_and_allow_list() {
    let reg = Registry::start();
    let d = Dist::new();
    let r = reg.reference("policy/trace_open:v1");
    d.build(&r);
    d.ok(&["image", "push", &r, "--insecure-registries", &reg.host]);
    d.ok(&["image", "remove", &r]);
    let base = [
        "--verify-image=false",
        "--insecure-registries",
        reg.host.as_str(),
    ];

    let err = d.fail(
        &[
            &["run", &r, "--host", "--timeout", "3", "--pull", "never"][..],
            &base,
        ]
        .concat(),
    );
    assert!(err.contains(&r), "{err}");
    let allowed = format!("{}/other/*", reg.host);
    let err = d.fail(
        &[
            &[
                "run",
                &r,
                "--host",
                "--timeout",
                "3",
                "--allowed-gadgets",
                &allowed,
            ][..],
            &base,
        ]
        .concat(),
    );
    assert!(err.contains("not allowed") && err.contains(&r), "{err}");
    // Refused before any pull.
    assert!(!d.ok(&["image", "list"]).contains("policy/trace_open"));
    let allowed = format!("{}/policy/*", reg.host);
    run_sees_open(
        &d.ig,
        &r,
        &[
            &["--pull", "missing", "--allowed-gadgets", &allowed][..],
            &base,
        ]
        .concat(),
    )
    .expect("pulled by ig run and running");
    run_sees_open(&d.ig, &r, &[&["--pull", "always"][..], &base].concat()).expect("pull always");
}
