//! JSON: one object per line (or pretty), dotted field names nested
//! (`runtime.containerName` → `{"runtime":{"containerName":…}}`).

use std::io::{self, Write};

use serde::ser::{Serialize, SerializeMap, Serializer};

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

/// A JSON string as serde_json writes it: `"`, `\\` and control characters escaped, the rest
/// (UTF-8 included) as is.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(short);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_json_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::U64(v) => {
            let _ = write!(out, "{v}");
        }
        Value::I64(v) => {
            let _ = write!(out, "{v}");
        }
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
            serde_json::to_writer_pretty(&mut self.out, &self.tree.view(event))?;
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
    fn compact_output_is_serde_json_byte_for_byte() {
        let mut schema = Schema::default();
        for n in [
            "a.b.c", "x", "a.d", "q\"uote", "e.f", "list", "neg", "flag", "none",
        ] {
            schema.push(FieldDef::new(n));
        }
        let all: String = (0u8..0x80).map(char::from).collect::<String>() + "é\u{2028}😀";
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
        let mut expected = serde_json::to_vec(&tree.view(&ev)).unwrap();
        expected.push(b'\n');
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
