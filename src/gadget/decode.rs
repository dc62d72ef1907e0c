//! Turns raw ring-buffer records into values, following a layout computed once from BTF.

use super::spec::{EventLayout, FieldKind};
use crate::event::Value;

pub struct Decoder {
    layout: EventLayout,
    scratch: Vec<u8>,
}

fn read_uint(data: &[u8], off: usize, size: usize) -> u64 {
    let mut raw = [0u8; 8];
    if let Some(src) = data.get(off..off + size.min(8)) {
        raw[..src.len()].copy_from_slice(src);
    }
    u64::from_le_bytes(raw)
}

fn sign_extend(v: u64, size: usize) -> i64 {
    let shift = 64 - 8 * size.min(8) as u32;
    ((v << shift) as i64) >> shift
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Decoder {
    pub fn new(layout: EventLayout) -> Self {
        Decoder { scratch: vec![0; layout.size as usize], layout }
    }

    pub fn layout(&self) -> &EventLayout {
        &self.layout
    }

    /// Decodes one record; a record shorter than the struct (variable-length output) reads as
    /// if its tail were zero.
    pub fn decode(&mut self, record: &[u8], out: &mut Vec<Value>) {
        let data: &[u8] = if record.len() >= self.scratch.len() {
            record
        } else {
            self.scratch.fill(0);
            self.scratch[..record.len()].copy_from_slice(record);
            &self.scratch
        };
        let start = out.len();
        for field in &self.layout.fields {
            let off = field.offset as usize;
            let value = match &field.kind {
                FieldKind::Int { size, signed } => {
                    let v = read_uint(data, off, *size as usize);
                    if *signed {
                        Value::I64(sign_extend(v, *size as usize))
                    } else {
                        Value::U64(v)
                    }
                }
                FieldKind::Bool => Value::Bool(read_uint(data, off, 1) != 0),
                FieldKind::Str { len } => {
                    Value::Str(c_string(data.get(off..off + *len as usize).unwrap_or(&[])))
                }
                FieldKind::StrList { len, count } => {
                    let bytes = data.get(off..off + *len as usize).unwrap_or(&[]);
                    let count = count.and_then(|i| out.get(start + i)).and_then(Value::as_u64);
                    Value::List(split_list(bytes, count))
                }
                FieldKind::Enum { size, signed, values } => {
                    let raw = read_uint(data, off, *size as usize);
                    let v = if *signed { sign_extend(raw, *size as usize) } else { raw as i64 };
                    match values.iter().find(|(_, val)| *val == v) {
                        Some((name, _)) => Value::Str(name.clone()),
                        None => Value::I64(v),
                    }
                }
                FieldKind::Bytes { len } => {
                    let bytes = data.get(off..off + *len as usize).unwrap_or(&[]);
                    Value::Str(hex::encode(bytes))
                }
            };
            out.push(value);
        }
    }
}

/// Splits NUL-separated strings. With a count, exactly that many (fewer if the buffer ends);
/// without, every string up to the last NUL.
fn split_list(bytes: &[u8], count: Option<u64>) -> Vec<String> {
    let mut items = Vec::new();
    let mut rest = bytes;
    loop {
        if count.is_some_and(|c| items.len() as u64 >= c) {
            break;
        }
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            if !rest.is_empty() && count.is_some() {
                items.push(String::from_utf8_lossy(rest).into_owned());
            }
            break;
        };
        if count.is_none() && end == 0 && rest.iter().all(|&b| b == 0) {
            break;
        }
        items.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        rest = &rest[end + 1..];
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gadget::spec::{RawField, Semantic};

    fn field(name: &str, offset: u32, kind: FieldKind) -> RawField {
        RawField { name: name.into(), offset, kind, semantic: Semantic::Plain }
    }

    #[test]
    fn decodes_ints_strings_and_lists() {
        let layout = EventLayout {
            struct_name: "ev".into(),
            size: 32,
            fields: vec![
                field("pid", 0, FieldKind::Int { size: 4, signed: false }),
                field("err", 4, FieldKind::Int { size: 4, signed: true }),
                field("comm", 8, FieldKind::Str { len: 8 }),
                field("args_count", 16, FieldKind::Int { size: 4, signed: false }),
                field("args", 20, FieldKind::StrList { len: 12, count: Some(3) }),
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
    fn list_keeps_empty_args_when_counted() {
        assert_eq!(split_list(b"sh\0-c\0\0\0\0", Some(3)), vec!["sh", "-c", ""]);
        assert_eq!(split_list(b"a\0b\0\0\0", None), vec!["a", "b"]);
        assert_eq!(split_list(b"trunc", Some(1)), vec!["trunc"]);
    }
}
