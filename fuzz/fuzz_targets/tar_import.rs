//! `ig image import`: an OCI-layout tar into a fresh store.
#![no_main]

use ig::oci::{archive, Store};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::Builder::new()
        .prefix("ig-fuzz-store")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary directory");
    let store = Store::open(dir.path()).expect("a fresh store");
    let _ = archive::import(&store, data, "fuzz.tar");
});
