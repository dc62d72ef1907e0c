//! Output of array data sources (map and BPF iterators): each read of the gadget is one array
//! of rows. Columns print a table per array (the screen cleared first when the gadget asks
//! and stdout is a terminal); JSON prints one JSON array per line; jsonpretty one pretty
//! array; YAML one document (a sequence) per array.

use std::io::{self, Write};

use super::{ColumnsSink, JsonTree, OutputMode, Sink};
use crate::event::{Event, Schema};

/// ANSI "cursor home, erase display": what `clear` prints.
const CLEAR_SCREEN: &[u8] = b"\x1b[H\x1b[2J";

pub trait ArraySink {
    /// Writes one array; `Ok(false)` stops the run (nothing more wanted).
    fn array(&mut self, rows: &[Event]) -> io::Result<bool>;
    fn finish(&mut self) -> io::Result<()>;
}

pub struct ArrayWriter<W: Write> {
    mode: OutputMode,
    schema: Schema,
    columns: Vec<usize>,
    tree: JsonTree,
    clear_screen: bool,
    arrays: u64,
    out: W,
}

impl<W: Write> ArrayWriter<W> {
    /// `clear_screen`: clear before each table (columns only; the caller decides whether the
    /// output is a terminal).
    pub fn new(
        mode: OutputMode,
        schema: &Schema,
        columns: Vec<usize>,
        clear_screen: bool,
        out: W,
    ) -> Self {
        ArrayWriter {
            mode,
            tree: JsonTree::new(schema, &columns),
            schema: schema.clone(),
            columns,
            clear_screen,
            arrays: 0,
            out,
        }
    }

    /// The writer the arrays go to (a daemon takes each array's bytes from a `Vec`).
    pub fn writer(&mut self) -> &mut W {
        &mut self.out
    }
}

impl<W: Write> ArraySink for ArrayWriter<W> {
    fn array(&mut self, rows: &[Event]) -> io::Result<bool> {
        let mut buf: Vec<u8> = Vec::new();
        match self.mode {
            OutputMode::Columns => {
                if self.clear_screen {
                    buf.extend_from_slice(CLEAR_SCREEN);
                } else if self.arrays > 0 {
                    // Tables one after the other are told apart by a blank line.
                    buf.push(b'\n');
                }
                let mut table = ColumnsSink::new(&self.schema, self.columns.clone(), &mut buf);
                for r in rows {
                    table.event(r)?;
                }
                table.finish()?;
            }
            OutputMode::Json | OutputMode::JsonPretty => {
                let views: Vec<_> = rows.iter().map(|r| self.tree.view(r)).collect();
                super::write_json(&mut buf, &views, self.mode == OutputMode::JsonPretty)
                    .map_err(io::Error::other)?;
                buf.push(b'\n');
            }
            OutputMode::Yaml => {
                let views: Vec<_> = rows.iter().map(|r| self.tree.view(r)).collect();
                buf.extend_from_slice(b"---\n");
                buf.extend_from_slice(
                    super::yaml_string(&views)
                        .map_err(io::Error::other)?
                        .as_bytes(),
                );
            }
        }
        self.arrays += 1;
        self.out.write_all(&buf)?;
        self.out.flush()?;
        Ok(true)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{FieldDef, Value};

    fn schema() -> Schema {
        let mut s = Schema::default();
        s.push(FieldDef::new("pid"));
        s.push(FieldDef::new("comm"));
        s
    }

    fn row(pid: u64, comm: &str) -> Event {
        Event {
            values: vec![Value::U64(pid), Value::Str(comm.into())],
        }
    }

    fn written(mode: OutputMode, clear: bool, arrays: &[Vec<Event>]) -> String {
        let mut out = Vec::new();
        {
            let mut w = ArrayWriter::new(mode, &schema(), vec![0, 1], clear, &mut out);
            for a in arrays {
                assert!(w.array(a).unwrap());
            }
            w.finish().unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_is_one_array_per_line() {
        let text = written(
            OutputMode::Json,
            false,
            &[vec![row(1, "a"), row(2, "b")], vec![]],
        );
        assert_eq!(
            text,
            "[{\"pid\":1,\"comm\":\"a\"},{\"pid\":2,\"comm\":\"b\"}]\n[]\n"
        );
    }

    #[test]
    fn columns_print_a_table_per_array() {
        let text = written(OutputMode::Columns, false, &[vec![row(1, "a")], vec![]]);
        assert_eq!(text.matches("PID").count(), 2, "{text}");
        assert!(!text.contains('\x1b'));
        let cleared = written(OutputMode::Columns, true, &[vec![row(1, "a")]]);
        assert!(cleared.starts_with("\x1b[H\x1b[2J"), "{cleared:?}");
    }

    #[test]
    fn yaml_is_a_document_per_array() {
        let text = written(OutputMode::Yaml, false, &[vec![row(1, "a\u{1b}")]]);
        assert!(text.starts_with("---\n"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
