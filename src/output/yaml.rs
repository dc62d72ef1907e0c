//! YAML: one document per event.

use std::io::{self, Write};

use super::{report_lost, JsonTree, Sink};
use crate::event::Event;

pub struct YamlSink<W: Write> {
    tree: JsonTree,
    out: W,
}

impl<W: Write> YamlSink<W> {
    pub fn new(tree: JsonTree, out: W) -> Self {
        YamlSink { tree, out }
    }
}

impl<W: Write> Sink for YamlSink<W> {
    fn event(&mut self, event: &Event) -> io::Result<bool> {
        let text = serde_norway::to_string(&self.tree.view(event)).map_err(io::Error::other)?;
        self.out.write_all(b"---\n")?;
        self.out.write_all(text.as_bytes())?;
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
