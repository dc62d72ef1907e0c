//! Columns: a header, then one line per event, widths from field annotations.

use std::io::{self, Write};

use super::{escape_control, report_lost, Sink};
use crate::event::{Align, Ellipsis, Event, Schema, Value};

/// One column: field index, width, alignment, where a long cell is cut, hex integers.
type Column = (usize, usize, Align, Ellipsis, bool);

pub struct ColumnsSink<W: Write> {
    out: W,
    columns: Vec<Column>,
    header_done: bool,
    header: String,
    line: String,
    /// One cell's text, reused.
    cell: String,
}

impl<W: Write> ColumnsSink<W> {
    pub fn new(schema: &Schema, columns: Vec<usize>, out: W) -> Self {
        // A column is at least as wide as its header, so a header is never cut (`PROC.PID` in a
        // `pid` template's 7 would read `PROC.P…`). Inspektor Gadget's columns get there by
        // showing short aliases for nested fields and widening to the header where they size
        // columns to content (textcolumns' AdjustWidthsToContent); ig names columns by the full
        // field path, so it widens.
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|i| {
                let f = &schema.fields[i];
                let header = f.name.chars().count();
                (i, f.width.max(header).max(1), f.align, f.ellipsis, f.hex)
            })
            .collect();
        let mut sink = ColumnsSink {
            out,
            columns,
            header_done: false,
            header: String::new(),
            line: String::new(),
            cell: String::new(),
        };
        let names: Vec<String> = sink
            .columns
            .iter()
            .map(|&(i, ..)| schema.fields[i].name.to_uppercase())
            .collect();
        sink.header = sink.render(names.iter().map(String::as_str));
        sink
    }

    fn render<'a>(&self, cells: impl Iterator<Item = &'a str>) -> String {
        let mut line = String::new();
        let n = self.columns.len();
        for (k, (cell, &(_, width, align, ellipsis, _))) in cells.zip(&self.columns).enumerate() {
            push_cell(
                &mut line,
                &escape_control(cell),
                width,
                align,
                ellipsis,
                k,
                n,
            );
        }
        line.truncate(line.trim_end().len());
        line.push('\n');
        line
    }

    fn ensure_header(&mut self) -> io::Result<()> {
        if !self.header_done {
            self.header_done = true;
            self.out.write_all(self.header.as_bytes())?;
        }
        Ok(())
    }
}

/// Appends cell `k` of `n`: cut to its width (the cut marked with `…` where `ellipsis` says),
/// padded on the side its alignment says, separated from the previous one by a space.
fn push_cell(
    line: &mut String,
    text: &str,
    width: usize,
    align: Align,
    ellipsis: Ellipsis,
    k: usize,
    n: usize,
) {
    if k > 0 {
        line.push(' ');
    }
    let chars = text.chars().count();
    if chars > width {
        let keep = width.saturating_sub(1);
        match ellipsis {
            Ellipsis::End => {
                line.extend(text.chars().take(keep));
                line.push('…');
            }
            Ellipsis::Start => {
                line.push('…');
                line.extend(text.chars().skip(chars - keep));
            }
            Ellipsis::Middle => {
                let head = keep.div_ceil(2);
                line.extend(text.chars().take(head));
                line.push('…');
                line.extend(text.chars().skip(chars - (keep - head)));
            }
            Ellipsis::None => line.extend(text.chars().take(width)),
        }
        return;
    }
    let pad = width - chars;
    match align {
        Align::Right => {
            line.extend(std::iter::repeat_n(' ', pad));
            line.push_str(text);
        }
        Align::Left => {
            line.push_str(text);
            if k + 1 < n {
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
    }
}

impl<W: Write> Sink for ColumnsSink<W> {
    fn begin(&mut self) -> io::Result<()> {
        self.ensure_header()?;
        self.out.flush()
    }

    fn event(&mut self, event: &Event) -> io::Result<bool> {
        self.ensure_header()?;
        // Like `render`, without an allocation per cell.
        let ColumnsSink {
            columns,
            line,
            cell,
            ..
        } = self;
        line.clear();
        let n = columns.len();
        for (k, &(i, width, align, ellipsis, hex)) in columns.iter().enumerate() {
            cell.clear();
            match event.get(i) {
                Value::U64(v) if hex => {
                    use std::fmt::Write as _;
                    let _ = write!(cell, "0x{v:x}");
                }
                value => value.write_display(cell),
            }
            push_cell(line, &escape_control(cell), width, align, ellipsis, k, n);
        }
        line.truncate(line.trim_end().len());
        line.push('\n');
        self.out.write_all(self.line.as_bytes())?;
        Ok(true)
    }

    fn lost(&mut self, map: &str, count: u64) -> io::Result<()> {
        self.out.flush()?;
        report_lost(map, count);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.ensure_header()?;
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{FieldDef, Value};

    #[test]
    fn header_rows_alignment_and_cut() {
        let mut schema = Schema::default();
        let mut pid = FieldDef::new("pid");
        pid.width = 5;
        pid.align = Align::Right;
        schema.push(pid);
        let mut comm = FieldDef::new("comm");
        comm.width = 4;
        schema.push(comm);
        let mut buf = Vec::new();
        {
            let mut sink = ColumnsSink::new(&schema, vec![0, 1], &mut buf);
            let ev = Event {
                values: vec![Value::U64(42), Value::Str("long\nname".into())],
            };
            sink.event(&ev).unwrap();
            sink.finish().unwrap();
        }
        assert_eq!(String::from_utf8(buf).unwrap(), "  PID COMM\n   42 lon…\n");
    }

    #[test]
    fn a_header_wider_than_its_width_widens_the_column() {
        let mut schema = Schema::default();
        let mut pid = FieldDef::new("proc.pid");
        pid.width = 7;
        pid.align = Align::Right;
        schema.push(pid);
        let mut comm = FieldDef::new("proc.comm");
        comm.width = 3;
        schema.push(comm);
        let mut buf = Vec::new();
        {
            let mut sink = ColumnsSink::new(&schema, vec![0, 1], &mut buf);
            let ev = Event {
                values: vec![Value::U64(12345678), Value::Str("a-long-command".into())],
            };
            sink.event(&ev).unwrap();
            sink.finish().unwrap();
        }
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "PROC.PID PROC.COMM\n12345678 a-long-c…\n"
        );
    }

    #[test]
    fn rows_match_the_header_renderer() {
        let mut schema = Schema::default();
        for (name, width, align) in [
            ("pid", 7, Align::Right),
            ("args", 6, Align::Left),
            ("ok", 5, Align::Left),
            ("e", 1, Align::Left),
        ] {
            let mut f = FieldDef::new(name);
            f.width = width;
            f.align = align;
            schema.push(f);
        }
        let events = [
            vec![
                Value::I64(-3),
                Value::List(vec!["a".into(), "b\tc".into()]),
                Value::Bool(true),
                Value::Str("xy".into()),
            ],
            vec![
                Value::U64(12345678),
                Value::List(vec![]),
                Value::Null,
                Value::Str(String::new()),
            ],
            vec![
                Value::U64(1),
                Value::Str("ünïcødé-long".into()),
                Value::Bool(false),
                Value::Str("  ".into()),
            ],
        ];
        for values in events {
            let ev = Event { values };
            let mut buf = Vec::new();
            let mut sink = ColumnsSink::new(&schema, vec![0, 1, 2, 3], &mut buf);
            sink.event(&ev).unwrap();
            let cells: Vec<String> = (0..4).map(|i| ev.get(i).display()).collect();
            let expected = sink.render(cells.iter().map(String::as_str));
            drop(sink);
            let text = String::from_utf8(buf).unwrap();
            assert_eq!(text.split_once('\n').unwrap().1, expected);
        }
    }
}
