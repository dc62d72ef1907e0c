//! BPF ELF objects (the image's eBPF layer): the ELF reader, the BTF in it, and the gadget
//! analysis (tracers, params, event layouts) with each param's value encoding and a decode of
//! every tracer's event.
#![no_main]

use ig::event::Value;
use ig::gadget::decode::Decoder;
use ig::gadget::spec::encode_param;
use ig::gadget::{GadgetSpec, Metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = GadgetSpec::analyze(data, Metadata::default()) else {
        return;
    };
    for p in &spec.params {
        for v in ["1", "-1", "0x7f", "true", "300", "18446744073709551616"] {
            let _ = encode_param(p, v);
        }
    }
    for t in &spec.tracers {
        let mut d = Decoder::new(t.layout.clone());
        let mut out: Vec<Value> = Vec::new();
        d.decode(&[0xa5; 64], &mut out);
    }
});
