//! Events encoded straight into an `EventBatch` (`proto/daemon.proto`) as they come, with
//! prost's field encoders: no `EventRecord` is built, no string is cloned. The run thread pays
//! this per event; building the message structs first cost a `Vec` and a `String` clone per
//! field. The bytes are the ones prost would write for the same message, so any client decodes
//! them with the generated types.

use bytes::Bytes;
use prost::encoding::{self, encode_key, encode_varint, encoded_len_varint, key_len, WireType};

use crate::event::{Event, Value};

pub struct BatchEncoder {
    datasource: u32,
    buf: Vec<u8>,
    record: Vec<u8>,
    count: u64,
}

impl BatchEncoder {
    pub fn new(datasource: u32) -> Self {
        let mut e = BatchEncoder {
            datasource,
            buf: Vec::with_capacity(64 * 1024),
            record: Vec::with_capacity(1024),
            count: 0,
        };
        e.start();
        e
    }

    fn start(&mut self) {
        self.buf.clear();
        self.count = 0;
        // proto3 leaves a zero scalar out.
        if self.datasource != 0 {
            encoding::uint32::encode(1, &self.datasource, &mut self.buf);
        }
    }

    /// Events in the batch so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Appends one event (`EventBatch.events`, field 2).
    pub fn push(&mut self, event: &Event) {
        self.record.clear();
        for v in &event.values {
            field_value(v, &mut self.record);
        }
        encode_key(2, WireType::LengthDelimited, &mut self.buf);
        encode_varint(self.record.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(&self.record);
        self.count += 1;
    }

    /// The encoded batch and its event count, and a fresh batch started; none when empty.
    pub fn take(&mut self) -> Option<(u64, Bytes)> {
        if self.count == 0 {
            return None;
        }
        let count = self.count;
        let bytes = Bytes::copy_from_slice(&self.buf);
        self.start();
        Some((count, bytes))
    }
}

/// One `FieldValue` (field 1 of `EventRecord`): its oneof member, always written (presence).
fn field_value(v: &Value, out: &mut Vec<u8>) {
    encode_key(1, WireType::LengthDelimited, out);
    match v {
        Value::Null => encode_varint(0, out),
        Value::U64(x) => {
            encode_varint(encoding::uint64::encoded_len(1, x) as u64, out);
            encoding::uint64::encode(1, x, out);
        }
        Value::I64(x) => {
            encode_varint(encoding::int64::encoded_len(2, x) as u64, out);
            encoding::int64::encode(2, x, out);
        }
        Value::Bool(x) => {
            encode_varint(encoding::bool::encoded_len(3, x) as u64, out);
            encoding::bool::encode(3, x, out);
        }
        Value::Str(s) => {
            encode_varint(encoding::string::encoded_len(4, s) as u64, out);
            encoding::string::encode(4, s, out);
        }
        Value::List(items) => {
            let list: usize = items
                .iter()
                .map(|i| encoding::string::encoded_len(1, i))
                .sum();
            let len = key_len(5) + encoded_len_varint(list as u64) + list;
            encode_varint(len as u64, out);
            encode_key(5, WireType::LengthDelimited, out);
            encode_varint(list as u64, out);
            for i in items {
                encoding::string::encode(1, i, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::daemon::convert::event_to_proto;
    use crate::daemon::proto;

    #[test]
    fn the_bytes_are_prosts() {
        let events = [
            Event {
                values: vec![
                    Value::Null,
                    Value::U64(0),
                    Value::U64(u64::MAX),
                    Value::I64(-2),
                    Value::I64(0),
                    Value::Bool(false),
                    Value::Bool(true),
                    Value::Str(String::new()),
                    Value::Str("/bin/true é".into()),
                    Value::List(vec![]),
                    Value::List(vec!["x".into(), "".into()]),
                ],
            },
            Event { values: vec![] },
        ];
        for ds in [0, 3] {
            let mut enc = BatchEncoder::new(ds);
            for e in &events {
                enc.push(e);
            }
            let (count, bytes) = enc.take().expect("a batch");
            assert_eq!(count, 2);
            let expected = proto::EventBatch {
                datasource: ds,
                events: events.iter().map(event_to_proto).collect(),
            };
            assert_eq!(bytes.to_vec(), expected.encode_to_vec());
            assert_eq!(proto::EventBatch::decode(bytes).unwrap(), expected);
            assert!(enc.take().is_none(), "a fresh batch is empty");
        }
    }
}
