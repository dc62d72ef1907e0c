//! Turns raw ring-buffer records into values, following a layout computed once from BTF.

use super::spec::{EventLayout, FieldKind};
use crate::event::{ListFiller, Value};

pub struct Decoder {
    layout: EventLayout,
    /// A short record (variable-length output) copied and zero-padded to the struct's size.
    scratch: Vec<u8>,
    /// Bytes of `scratch` that may be non-zero (what the last short record filled).
    dirty: usize,
}

fn read_uint(data: &[u8], off: usize, size: usize) -> u64 {
    let mut raw = [0u8; 8];
    if let Some(src) = data.get(off..off + size.min(8)) {
        raw[..src.len()].copy_from_slice(src);
    }
    u64::from_le_bytes(raw)
}

fn sign_extend(v: u64, size: usize) -> i64 {
    if size == 0 {
        // A zero-sized integer (BTF allows it) reads as 0; the shift below would be 64.
        return 0;
    }
    let shift = 64 - 8 * size.min(8) as u32;
    ((v << shift) as i64) >> shift
}

fn c_str(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
}

impl Decoder {
    pub fn new(layout: EventLayout) -> Self {
        Decoder {
            scratch: vec![0; layout.size as usize],
            dirty: 0,
            layout,
        }
    }

    pub fn layout(&self) -> &EventLayout {
        &self.layout
    }

    /// Decodes one record, appending a value per field; a record shorter than the struct
    /// (variable-length output) reads as if its tail were zero.
    pub fn decode(&mut self, record: &[u8], out: &mut Vec<Value>) {
        let start = out.len();
        out.resize(start + self.layout.fields.len(), Value::Null);
        self.decode_into(record, &mut out[start..]);
    }

    /// Decodes one record into `out[..fields]` (which must be that long), overwriting what is
    /// there and reusing its string buffers: no allocation per field once the slots have grown.
    pub fn decode_into(&mut self, record: &[u8], out: &mut [Value]) {
        let data: &[u8] = if record.len() >= self.scratch.len() {
            record
        } else {
            // Only the bytes the previous short record left need zeroing.
            let len = record.len();
            if self.dirty > len {
                self.scratch[len..self.dirty].fill(0);
            }
            self.scratch[..len].copy_from_slice(record);
            self.dirty = len;
            &self.scratch
        };
        for (k, field) in self.layout.fields.iter().enumerate() {
            let off = field.offset as usize;
            match &field.kind {
                FieldKind::Int { size, signed } => {
                    let v = read_uint(data, off, *size as usize);
                    out[k] = if *signed {
                        Value::I64(sign_extend(v, *size as usize))
                    } else {
                        Value::U64(v)
                    };
                }
                FieldKind::Bool => out[k] = Value::Bool(read_uint(data, off, 1) != 0),
                FieldKind::Str { len } => {
                    out[k].assign_str(&c_str(data.get(off..off + *len as usize).unwrap_or(&[])))
                }
                FieldKind::StrList { len, count } => {
                    let bytes = data.get(off..off + *len as usize).unwrap_or(&[]);
                    // Only a count decoded before this field (of this record) counts.
                    let count = count.filter(|&i| i < k).and_then(|i| out[i].as_u64());
                    let mut list = ListFiller::new(&mut out[k]);
                    split_list_into(bytes, count, &mut list);
                }
                FieldKind::Enum {
                    size,
                    signed,
                    values,
                } => {
                    let raw = read_uint(data, off, *size as usize);
                    let v = if *signed {
                        sign_extend(raw, *size as usize)
                    } else {
                        raw as i64
                    };
                    match values.iter().find(|(_, val)| *val == v) {
                        Some((name, _)) => out[k].assign_str(name),
                        None => out[k] = Value::I64(v),
                    }
                }
                FieldKind::Bytes { len } => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let bytes = data.get(off..off + *len as usize).unwrap_or(&[]);
                    let buf = out[k].str_buf();
                    for b in bytes {
                        buf.push(HEX[(b >> 4) as usize] as char);
                        buf.push(HEX[(b & 15) as usize] as char);
                    }
                }
            }
        }
    }
}

/// Splits NUL-separated strings. With a count, exactly that many (fewer if the buffer ends);
/// without, every string up to the last NUL.
fn split_list_into(bytes: &[u8], count: Option<u64>, items: &mut ListFiller<'_>) {
    let mut rest = bytes;
    loop {
        if count.is_some_and(|c| items.len() as u64 >= c) {
            break;
        }
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            if !rest.is_empty() && count.is_some() {
                items.push(&String::from_utf8_lossy(rest));
            }
            break;
        };
        if count.is_none() && end == 0 && rest.iter().all(|&b| b == 0) {
            break;
        }
        items.push(&String::from_utf8_lossy(&rest[..end]));
        rest = &rest[end + 1..];
    }
}

#[cfg(test)]
fn split_list(bytes: &[u8], count: Option<u64>) -> Vec<String> {
    let mut v = Value::Null;
    split_list_into(bytes, count, &mut ListFiller::new(&mut v));
    match v {
        Value::List(items) => items,
        _ => unreachable!(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gadget::spec::{RawField, Semantic};

    fn field(name: &str, offset: u32, kind: FieldKind) -> RawField {
        RawField {
            name: name.into(),
            offset,
            kind,
            semantic: Semantic::Plain,
        }
    }

    #[test]
    fn decodes_ints_strings_and_lists() {
        let layout = EventLayout {
            struct_name: "ev".into(),
            size: 32,
            fields: vec![
                field(
                    "pid",
                    0,
                    FieldKind::Int {
                        size: 4,
                        signed: false,
                    },
                ),
                field(
                    "err",
                    4,
                    FieldKind::Int {
                        size: 4,
                        signed: true,
                    },
                ),
                field("comm", 8, FieldKind::Str { len: 8 }),
                field(
                    "args_count",
                    16,
                    FieldKind::Int {
                        size: 4,
                        signed: false,
                    },
                ),
                field(
                    "args",
                    20,
                    FieldKind::StrList {
                        len: 12,
                        count: Some(3),
                    },
                ),
            ],
        };
        let mut rec = vec![0u8; 20];
        rec[0..4].copy_from_slice(&42u32.to_le_bytes());
        rec[4..8].copy_from_slice(&(-2i32).to_le_bytes());
        rec[8..12].copy_from_slice(b"true");
        rec[16..20].copy_from_slice(&3u32.to_le_bytes());
        rec.extend_from_slice(b"/bin/true\0x\0"); // record shorter than the struct
        let mut d = Decoder::new(layout);
        let mut out = Vec::new();
        d.decode(&rec, &mut out);
        assert_eq!(out[0], Value::U64(42));
        assert_eq!(out[1], Value::I64(-2));
        assert_eq!(out[2], Value::Str("true".into()));
        assert_eq!(out[4], Value::List(vec!["/bin/true".into(), "x".into()]));
    }

    #[test]
    fn reused_slots_decode_like_fresh_ones() {
        let layout = EventLayout {
            struct_name: "ev".into(),
            size: 40,
            fields: vec![
                field("comm", 0, FieldKind::Str { len: 8 }),
                field(
                    "args",
                    8,
                    FieldKind::StrList {
                        len: 24,
                        count: Some(2),
                    },
                ),
                field(
                    "args_count",
                    32,
                    FieldKind::Int {
                        size: 4,
                        signed: false,
                    },
                ),
                field("raw", 36, FieldKind::Bytes { len: 2 }),
            ],
        };
        let mut long = vec![0u8; 40];
        long[0..8].copy_from_slice(b"longname");
        long[8..20].copy_from_slice(b"aaaa\0bbbbbb\0");
        long[32..36].copy_from_slice(&9u32.to_le_bytes());
        long[36..38].copy_from_slice(&[0xab, 0x01]);
        let mut short = vec![0u8; 10];
        short[0..2].copy_from_slice(b"sh");
        short[8..10].copy_from_slice(b"x\0");
        let mut d = Decoder::new(layout);
        let mut reused = vec![Value::Null; 4];
        for rec in [&long, &short, &long, &short] {
            d.decode_into(rec, &mut reused);
            let mut clean = Vec::new();
            Decoder::new(d.layout().clone()).decode(rec, &mut clean);
            assert_eq!(reused, clean);
        }
        let mut out = vec![Value::Null; 4];
        d.decode_into(&short, &mut out);
        assert_eq!(out[0], Value::Str("sh".into()));
        // the count field comes after the list: not used (it is not decoded yet)
        assert_eq!(out[1], Value::List(vec!["x".into()]));
        assert_eq!(out[2], Value::U64(0));
        assert_eq!(out[3], Value::Str("0000".into()));
    }

    /// Found by the `event_decode` fuzz target (issue 17): a zero-sized signed integer (BTF
    /// allows one) made `sign_extend` shift by 64.
    #[test]
    fn zero_sized_ints_decode_as_zero() {
        let layout = EventLayout {
            struct_name: "ev".into(),
            size: 8,
            fields: vec![
                field(
                    "a",
                    0,
                    FieldKind::Int {
                        size: 0,
                        signed: true,
                    },
                ),
                field(
                    "b",
                    0,
                    FieldKind::Enum {
                        size: 0,
                        signed: true,
                        values: vec![],
                    },
                ),
            ],
        };
        let mut out = Vec::new();
        Decoder::new(layout).decode(&[0xff; 8], &mut out);
        assert_eq!(out, vec![Value::I64(0), Value::I64(0)]);
    }

    #[test]
    fn list_keeps_empty_args_when_counted() {
        assert_eq!(split_list(b"sh\0-c\0\0\0\0", Some(3)), vec!["sh", "-c", ""]);
        assert_eq!(split_list(b"a\0b\0\0\0", None), vec!["a", "b"]);
        assert_eq!(split_list(b"trunc", Some(1)), vec!["trunc"]);
    }
}
