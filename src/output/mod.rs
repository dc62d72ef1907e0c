//! Output writers. Each is a [`Sink`]: it receives the schema once, then events, then losses,
//! then `finish`. Returning `Ok(false)` from `event` stops the run early.

mod array;
mod columns;
mod escape;
mod json;
mod yaml;

use std::io::{self, Write};

pub use array::{ArraySink, ArrayWriter};
pub use columns::ColumnsSink;
pub use escape::{escape_control, escape_except, is_unsafe};
pub use json::{to_string as json_string, to_writer as write_json, JsonSink, JsonTree};
pub use yaml::{to_string as yaml_string, YamlSink};

use crate::event::{Event, Schema};

pub trait Sink {
    fn event(&mut self, event: &Event) -> io::Result<bool>;
    /// Events a ring buffer dropped since the last call.
    fn lost(&mut self, map: &str, count: u64) -> io::Result<()>;
    /// Make everything written so far visible (called after each batch).
    fn flush(&mut self) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;
    /// The run's events start: a sink with a header may print it now (columns do when a
    /// gadget shows several data sources, as Inspektor Gadget's CLI prints every data
    /// source's header once before any event).
    fn begin(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    Columns,
    Json,
    JsonPretty,
    Yaml,
}

impl OutputMode {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "columns" => Ok(OutputMode::Columns),
            "json" => Ok(OutputMode::Json),
            "jsonpretty" => Ok(OutputMode::JsonPretty),
            "yaml" => Ok(OutputMode::Yaml),
            _ => Err(format!(
                "unknown output mode {s:?} (use columns, json, jsonpretty or yaml)"
            )),
        }
    }
}

/// Builds the sink for a mode, writing to `out`; `columns` are the schema indices to show.
pub fn make_sink<'a, W: Write + 'a>(
    mode: OutputMode,
    schema: &Schema,
    columns: Vec<usize>,
    out: W,
) -> Box<dyn Sink + 'a> {
    match mode {
        OutputMode::Columns => Box::new(ColumnsSink::new(schema, columns, out)),
        OutputMode::Json => Box::new(JsonSink::new(JsonTree::new(schema, &columns), out, false)),
        OutputMode::JsonPretty => {
            Box::new(JsonSink::new(JsonTree::new(schema, &columns), out, true))
        }
        OutputMode::Yaml => Box::new(YamlSink::new(JsonTree::new(schema, &columns), out)),
    }
}

/// Losses are reported on stderr so they never mix with machine-readable stdout.
pub(crate) fn report_lost(map: &str, count: u64) {
    // "buffer": the map is a BPF ring buffer or a perf event array, and both fill up.
    eprintln!("ig: warning: {count} events lost (buffer {map} was full)");
}
