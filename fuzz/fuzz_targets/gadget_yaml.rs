//! `gadget.yaml` (the image's config blob): parsing, every accessor, the round trip through
//! `to_yaml`, and the analysis of a built-in object against the hostile metadata.
#![no_main]

use ig::gadget::{GadgetSpec, Metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = Metadata::parse(data) else {
        return;
    };
    let _ = meta.params();
    for ds in meta.datasource_names() {
        let _ = meta.fields(&ds);
    }
    let _ = meta.skip_when();
    let _ = meta.section("traceloop");
    if let Ok(yaml) = meta.to_yaml() {
        let again = Metadata::parse(yaml.as_bytes()).expect("to_yaml output parses again");
        assert_eq!(again.to_yaml().ok().as_deref(), Some(yaml.as_str()));
    }
    if let Some(g) = ig::builtin::find("trace_exec") {
        if let Some((_, object)) = g.objects.first() {
            let _ = GadgetSpec::analyze(&object.to_vec(), meta);
        }
    }
});
