//! JSON: one object per line (or pretty), dotted field names nested
//! (`runtime.containerName` → `{"runtime":{"containerName":…}}`).

use std::io::{self, Write};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

use super::escape::is_unsafe;

use super::{report_lost, Sink};
use crate::event::{Event, Schema, Value};

/// The nesting of the selected fields, computed once.
#[derive(Debug, Clone)]
pub struct JsonTree {
    nodes: Vec<(String, Node)>,
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(usize),
    Branch(JsonTree),
}

impl JsonTree {
    pub fn new(schema: &Schema, columns: &[usize]) -> Self {
        let mut root = JsonTree { nodes: Vec::new() };
        for &i in columns {
            let parts: Vec<&str> = schema.fields[i].name.split('.').collect();
            root.insert(&parts, i);
        }
        root
    }

    fn insert(&mut self, path: &[&str], index: usize) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.nodes.push((first.to_string(), Node::Leaf(index)));
            return;
        }
        let pos = match self
            .nodes
            .iter()
            .position(|(k, n)| k == first && matches!(n, Node::Branch(_)))
        {
            Some(p) => p,
            None => {
                self.nodes.push((
                    first.to_string(),
                    Node::Branch(JsonTree { nodes: Vec::new() }),
                ));
                self.nodes.len() - 1
            }
        };
        if let Node::Branch(t) = &mut self.nodes[pos].1 {
            t.insert(rest, index);
        }
    }

    pub fn view<'a>(&'a self, event: &'a Event) -> EventView<'a> {
        EventView { tree: self, event }
    }
}

/// An event seen through a tree, serializable by any serde serializer.
pub struct EventView<'a> {
    tree: &'a JsonTree,
    event: &'a Event,
}

impl Serialize for EventView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.tree.nodes.len()))?;
        for (key, node) in &self.tree.nodes {
            match node {
                Node::Leaf(i) => map.serialize_entry(key, self.event.get(*i))?,
                Node::Branch(t) => map.serialize_entry(
                    key,
                    &EventView {
                        tree: t,
                        event: self.event,
                    },
                )?,
            }
        }
        map.end()
    }
}

pub struct JsonSink<W: Write> {
    tree: JsonTree,
    out: W,
    pretty: bool,
    /// Compact output as a flat program: literal bytes (braces, commas, escaped keys), then
    /// the field whose value follows them. Built once from the tree.
    program: Vec<(Vec<u8>, Option<usize>)>,
    line: Vec<u8>,
}

impl<W: Write> JsonSink<W> {
    pub fn new(tree: JsonTree, out: W, pretty: bool) -> Self {
        let mut program = vec![(Vec::new(), None)];
        compile(&tree, &mut program);
        if let Some((lit, _)) = program.last_mut() {
            lit.push(b'\n');
        }
        JsonSink {
            tree,
            out,
            pretty,
            program,
            line: Vec::with_capacity(4096),
        }
    }

    /// The writer the lines go to (a daemon's batch buffer is taken from here).
    pub fn writer(&mut self) -> &mut W {
        &mut self.out
    }
}

/// Appends the literal parts and field slots of one object to `program`; the last entry of
/// `program` is always a literal still open for appending.
fn compile(tree: &JsonTree, program: &mut Vec<(Vec<u8>, Option<usize>)>) {
    let lit = |p: &mut Vec<(Vec<u8>, Option<usize>)>| -> usize { p.len() - 1 };
    let i = lit(program);
    program[i].0.push(b'{');
    for (k, (key, node)) in tree.nodes.iter().enumerate() {
        let i = lit(program);
        if k > 0 {
            program[i].0.push(b',');
        }
        write_json_str(&mut program[i].0, key);
        program[i].0.push(b':');
        match node {
            Node::Leaf(field) => {
                program[i].1 = Some(*field);
                program.push((Vec::new(), None));
            }
            Node::Branch(t) => compile(t, program),
        }
    }
    let i = lit(program);
    program[i].0.push(b'}');
}

/// A JSON string as serde_json writes it (`"`, `\\` and C0 controls escaped, UTF-8 as is),
/// and, by ig's one escaping rule (`super::escape`), DEL, C1 controls and bidi controls
/// written as `\uNNNN`: the value read back is the same, the raw character never reaches a
/// terminal that shows the JSON.
/// Bytes `write_json_str` looks at: controls, `"`, `\\`, DEL, and the lead bytes of the unsafe
/// non-ASCII characters; every other byte is copied as it is.
const JSON_ATTENTION: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t[0xc2] = true;
    t[0xd8] = true;
    t[0xe2] = true;
    t
};

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip what needs no look (most of a command line) at one table lookup per byte.
        match bytes[i..].iter().position(|&b| JSON_ATTENTION[b as usize]) {
            Some(n) => i += n,
            None => break,
        }
        let b = bytes[i];
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
                i += 1;
                start = i;
                continue;
            }
            // The lead bytes of every unsafe non-ASCII character (U+0080–U+009F, U+061C,
            // U+200E–U+2069); anything else is copied without decoding.
            0xc2 | 0xd8 | 0xe2 => {
                let c = s[i..].chars().next().unwrap_or('\0');
                if is_unsafe(c) {
                    out.extend_from_slice(&bytes[start..i]);
                    let _ = write!(out, "\\u{:04x}", c as u32);
                    i += c.len_utf8();
                    start = i;
                } else {
                    i += 1;
                }
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(short);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// serde_json's formatter with ig's escaping rule added to every string (see
/// [`write_json_str`]); the layout (compact or pretty) is the wrapped formatter's.
struct Escaping<F>(F);

impl<F: Formatter> Formatter for Escaping<F> {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, s: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if is_unsafe(c) {
                w.write_all(&s.as_bytes()[start..i])?;
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&s.as_bytes()[start..])
    }
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Writes `value` as compact (`pretty` false) or pretty JSON, with ig's escaping rule. Every
/// JSON ig prints goes through here or [`JsonSink`].
pub fn to_writer<W: Write, T: Serialize + ?Sized>(
    out: W,
    value: &T,
    pretty: bool,
) -> serde_json::Result<()> {
    if pretty {
        let mut ser = serde_json::Serializer::with_formatter(out, Escaping(PrettyFormatter::new()));
        value.serialize(&mut ser)
    } else {
        let mut ser = serde_json::Serializer::with_formatter(out, Escaping(CompactFormatter));
        value.serialize(&mut ser)
    }
}

/// [`to_writer`] into a `String`.
pub fn to_string<T: Serialize + ?Sized>(value: &T, pretty: bool) -> serde_json::Result<String> {
    let mut out = Vec::new();
    to_writer(&mut out, value, pretty)?;
    // Only UTF-8 went in: serde_json writes `str`s and ASCII.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn write_json_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::U64(v) => out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
        Value::I64(v) => out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
        Value::Bool(v) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
        Value::Str(s) => write_json_str(out, s),
        Value::List(items) => {
            out.push(b'[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                write_json_str(out, item);
            }
            out.push(b']');
        }
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn event(&mut self, event: &Event) -> io::Result<bool> {
        if self.pretty {
            to_writer(&mut self.out, &self.tree.view(event), true)?;
            self.out.write_all(b"\n")?;
            return Ok(true);
        }
        // Compact: the same bytes serde_json writes, from the precompiled program.
        self.line.clear();
        for (lit, field) in &self.program {
            self.line.extend_from_slice(lit);
            if let Some(i) = field {
                write_json_value(&mut self.line, event.get(*i));
            }
        }
        self.out.write_all(&self.line)?;
        Ok(true)
    }

    fn lost(&mut self, map: &str, count: u64) -> io::Result<()> {
        self.out.flush()?;
        report_lost(map, count);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{FieldDef, Value};

    #[test]
    fn nests_dotted_names() {
        let mut schema = Schema::default();
        for n in [
            "runtime.containerName",
            "pid",
            "args",
            "runtime.runtimeName",
        ] {
            schema.push(FieldDef::new(n));
        }
        let ev = Event {
            values: vec![
                Value::Str("web".into()),
                Value::U64(7),
                Value::List(vec!["/bin/true".into(), "x".into()]),
                Value::Str("docker".into()),
            ],
        };
        let mut buf = Vec::new();
        let mut sink = JsonSink::new(JsonTree::new(&schema, &[0, 1, 2, 3]), &mut buf, false);
        sink.event(&ev).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"runtime\":{\"containerName\":\"web\",\"runtimeName\":\"docker\"},\"pid\":7,\"args\":[\"/bin/true\",\"x\"]}\n"
        );
    }

    #[test]
    fn compact_output_is_the_escaping_formatters_byte_for_byte() {
        let mut schema = Schema::default();
        for n in [
            "a.b.c", "x", "a.d", "q\"uote", "e.f", "list", "neg", "flag", "none",
        ] {
            schema.push(FieldDef::new(n));
        }
        let all: String = (0u8..0x80).map(char::from).collect::<String>()
            + "é\u{85}\u{9f}\u{a0}\u{61c}\u{200e}\u{2028}\u{202e}\u{2069}\u{206a}😀";
        let ev = Event {
            values: vec![
                Value::Str(all.clone()),
                Value::U64(u64::MAX),
                Value::Str(String::new()),
                Value::Str("\\\"".into()),
                Value::Null,
                Value::List(vec![all.clone(), String::new(), "x".into()]),
                Value::I64(i64::MIN),
                Value::Bool(false),
                Value::List(vec![]),
            ],
        };
        let cols: Vec<usize> = (0..9).collect();
        let tree = JsonTree::new(&schema, &cols);
        let mut expected = to_string(&tree.view(&ev), false).unwrap().into_bytes();
        expected.push(b'\n');
        let plain = serde_json::to_vec(&tree.view(&ev)).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&expected).unwrap();
        assert_eq!(
            back,
            serde_json::from_slice::<serde_json::Value>(&plain).unwrap()
        );
        let text = String::from_utf8(expected.clone()).unwrap();
        assert!(!text.trim_end().chars().any(is_unsafe), "{text}");
        assert!(text.contains("\\u0085\\u009f\u{a0}\\u061c\\u200e\\u2028\\u202e\\u2069\u{206a}"));
        let mut buf = Vec::new();
        let mut sink = JsonSink::new(tree, &mut buf, false);
        sink.event(&ev).unwrap();
        sink.event(&ev).unwrap();
        assert_eq!(buf[..buf.len() / 2], expected[..]);
        assert_eq!(buf[buf.len() / 2..], expected[..]);
        // no fields at all
        let mut buf = Vec::new();
        JsonSink::new(JsonTree::new(&schema, &[]), &mut buf, false)
            .event(&ev)
            .unwrap();
        assert_eq!(buf, b"{}\n");
    }
}
