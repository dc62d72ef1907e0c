//! OCI index and manifest JSON (from a registry, an archive or the store): parsing, and the
//! round trip through serialization.
#![no_main]

use ig::oci::types::{Descriptor, Index, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = serde_json::from_slice::<Index>(data) {
        let bytes = serde_json::to_vec(&index).expect("an index serializes");
        let again: Index = serde_json::from_slice(&bytes).expect("a serialized index parses");
        assert_eq!(serde_json::to_vec(&again).ok(), Some(bytes));
    }
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(data) {
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
        let again: Manifest = serde_json::from_slice(&bytes).expect("a serialized manifest parses");
        assert_eq!(serde_json::to_vec(&again).ok(), Some(bytes));
    }
    if let Ok(desc) = serde_json::from_slice::<Descriptor>(data) {
        let bytes = serde_json::to_vec(&desc).expect("a descriptor serializes");
        let again: Descriptor = serde_json::from_slice(&bytes).expect("it parses");
        assert_eq!(again, desc);
    }
});
