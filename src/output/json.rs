//! JSON: one object per line (or pretty), dotted field names nested
//! (`runtime.containerName` → `{"runtime":{"containerName":…}}`).

use std::io::{self, Write};

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{report_lost, Sink};
use crate::event::{Event, Schema};

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
        let pos = match self.nodes.iter().position(|(k, n)| k == first && matches!(n, Node::Branch(_))) {
            Some(p) => p,
            None => {
                self.nodes.push((first.to_string(), Node::Branch(JsonTree { nodes: Vec::new() })));
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
                Node::Branch(t) => map.serialize_entry(key, &EventView { tree: t, event: self.event })?,
            }
        }
        map.end()
    }
}

pub struct JsonSink<W: Write> {
    tree: JsonTree,
    out: W,
    pretty: bool,
}

impl<W: Write> JsonSink<W> {
    pub fn new(tree: JsonTree, out: W, pretty: bool) -> Self {
        JsonSink { tree, out, pretty }
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn event(&mut self, event: &Event) -> io::Result<bool> {
        let view = self.tree.view(event);
        if self.pretty {
            serde_json::to_writer_pretty(&mut self.out, &view)?;
        } else {
            serde_json::to_writer(&mut self.out, &view)?;
        }
        self.out.write_all(b"\n")?;
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
        for n in ["runtime.containerName", "pid", "args", "runtime.runtimeName"] {
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
}
