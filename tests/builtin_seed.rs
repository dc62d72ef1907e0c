//! The built-in gadgets seeded into the local store from the binary: a store another `ig`
//! seeded (an older release, or a debug build beside a release one) is brought to this
//! binary's gadgets, and an image the user put under the same reference is kept.

mod common;

use common::*;

use ig::builtin::{self, BuiltinGadget};
use ig::oci::Store;

fn stdout_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The digest `ig image list` shows for trace_exec.
fn listed_digest(ig: &Ig) -> String {
    let o = ig.output(&["image", "list"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    stdout_of(&o)
        .lines()
        .find(|l| l.contains("gadget/trace_exec "))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("trace_exec not listed: {}", stdout_of(&o)))
        .to_string()
}

#[test]
fn a_builtin_seeded_by_another_ig_is_replaced_by_this_binarys() {
    let ig = Ig::new();
    let o = ig.output(&["image", "inspect", "trace_exec"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let ours = listed_digest(&ig);

    // Another ig's trace_exec: other object bytes under the same reference, seeded the same
    // way. This binary's blobs stay in the store beside it.
    let current = builtin::find("trace_exec").expect("trace_exec is built in");
    let objects: Vec<(&'static str, &'static [u8])> = current
        .objects
        .iter()
        .map(|(arch, obj)| {
            let mut other = obj.to_vec();
            other.extend_from_slice(b"another build");
            (*arch, &*Box::leak(other.into_boxed_slice()))
        })
        .collect();
    let other = BuiltinGadget {
        name: current.name,
        metadata: current.metadata,
        objects: Box::leak(objects.into_boxed_slice()),
    };
    let store = Store::open(ig.store.path()).expect("store");
    builtin::seed(&store, &other).expect("seed the other build");
    assert_ne!(listed_digest(&ig), ours, "the other build is stored");

    // Running it needs no key: the binary's own gadget is seeded again and run.
    let o = ig.output(&["run", "trace_exec", "--host", "--timeout", "1"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(listed_digest(&ig), ours);
}

#[test]
fn an_image_the_user_put_under_a_builtin_reference_is_kept() {
    let ig = Ig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("g");
    std::fs::create_dir(&src).expect("mkdir");
    let gadget = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gadgets/trace_exec");
    for f in ["program.bpf.c", "gadget.yaml"] {
        std::fs::copy(gadget.join(f), src.join(f)).expect("copy the gadget source");
    }
    let o = ig.output(&[
        "image",
        "build",
        "-t",
        "trace_exec",
        src.to_str().expect("utf-8 path"),
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let built = listed_digest(&ig);
    // Not the binary's: unsigned, so a run is refused, and the image stays.
    let o = ig.output(&["run", "trace_exec", "--host", "--timeout", "1"]);
    assert!(!o.status.success());
    assert!(
        stderr_of(&o).contains("signature verification needs a public key"),
        "{}",
        stderr_of(&o)
    );
    assert_eq!(listed_digest(&ig), built);
}
