//! Image references (command line, archive `ref.name` annotations, the store's index): parse,
//! and parse → display → parse gives the same reference.
#![no_main]

use ig::oci::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let Ok(r) = Reference::parse_with(&input, "ghcr.io/x/gadget") else {
        return;
    };
    let _ = r.short_name();
    let _ = r.name();
    let shown = r.to_string();
    let again = Reference::parse_with(&shown, "ghcr.io/x/gadget")
        .unwrap_or_else(|e| panic!("{input:?} displays as {shown:?}, which does not parse: {e}"));
    assert_eq!(again, r, "{input:?} → {shown:?}");
});
