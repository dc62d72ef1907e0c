//! Ring-buffer records decoded by a layout an image's BTF dictated. The input is the layout
//! (as hostile as BTF can make it: any size, offset and length) followed by records.
#![no_main]

use ig::event::Value;
use ig::gadget::decode::Decoder;
use ig::gadget::spec::{EventLayout, FieldKind, RawField, Semantic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    // struct size (bounded: the ring carries the records) and field count
    let size = u32::from(u16::from_le_bytes([data[0], data[1]]));
    let nfields = usize::from(data[2] % 16);
    let mut rest = &data[3..];
    let mut fields = Vec::new();
    for i in 0..nfields {
        if rest.len() < 9 {
            break;
        }
        let (f, tail) = rest.split_at(9);
        rest = tail;
        let offset = u32_at(&f[1..5]);
        let n = u32_at(&f[5..9]);
        let kind = match f[0] % 6 {
            0 => FieldKind::Int {
                size: n,
                signed: f[0] & 0x80 != 0,
            },
            1 => FieldKind::Bool,
            2 => FieldKind::Str { len: n },
            3 => FieldKind::StrList {
                len: n,
                count: (f[0] & 0x40 != 0).then_some(usize::from(f[0] >> 3) % 16),
            },
            4 => FieldKind::Enum {
                size: n,
                signed: f[0] & 0x80 != 0,
                values: vec![("ONE".into(), 1), ("MINUS".into(), -1)],
            },
            _ => FieldKind::Bytes { len: n },
        };
        fields.push(RawField {
            name: format!("f{i}"),
            offset,
            kind,
            semantic: Semantic::Plain,
        });
    }
    let mut decoder = Decoder::new(EventLayout {
        struct_name: "event".into(),
        size,
        fields,
    });
    // Records of varying lengths through the same decoder (its scratch buffer is reused).
    let mut out: Vec<Value> = Vec::new();
    for record in rest.split(|&b| b == 0xfe) {
        out.clear();
        decoder.decode(record, &mut out);
    }
});
