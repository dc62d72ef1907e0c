//! `.BTF` sections: parsing, then every query the spec analysis makes of a parsed blob.
#![no_main]

use ig::gadget::btf::Btf;
use ig::gadget::spec::event_layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data) else {
        return;
    };
    let ids: Vec<u32> = btf.types().map(|(id, _)| id).collect();
    for id in ids.into_iter().chain([u32::MAX]) {
        let _ = btf.skip_qualifiers(id);
        let _ = btf.resolve(id);
        let _ = btf.typedef_chain(id);
        let _ = btf.size_of(id);
        let _ = event_layout(&btf, id, "event");
    }
    let _ = btf.datasec(".rodata");
    let _ = btf.struct_by_name("event");
});
