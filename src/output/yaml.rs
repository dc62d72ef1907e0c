//! YAML: one document per event, and every other YAML ig prints.
//!
//! Written by ig rather than by serde_norway's emitter: that emitter writes bidi controls
//! (U+202E, …) raw, being printable to YAML, and offers no way to ask for a quoted style. The
//! layout is the same block style it writes; a string that is not plainly safe is
//! double-quoted with YAML's escapes (YAML 1.2 §5.7), so a YAML parser reads back the exact
//! value. Values go through `serde_json::Value` (ordered: the `preserve_order` feature).

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use super::escape::is_unsafe;
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
        let text = to_string(&self.tree.view(event)).map_err(io::Error::other)?;
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

/// `value` as a block-style YAML document (no `---`), ending in a newline.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let value = serde_json::to_value(value)?;
    let mut out = String::new();
    match &value {
        Value::Object(m) if !m.is_empty() => write_block(&mut out, &value, 0),
        Value::Array(a) if !a.is_empty() => write_block(&mut out, &value, 0),
        v => {
            write_scalar(&mut out, v);
            out.push('\n');
        }
    }
    Ok(out)
}

/// A non-empty map or sequence, each line indented by `indent` spaces.
fn write_block(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                out.push_str(&pad);
                write_str(out, key);
                out.push(':');
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push('\n');
                        write_block(out, v, indent + 2);
                    }
                    // A sequence in a map sits at the map's indent, as serde_norway writes it.
                    Value::Array(a) if !a.is_empty() => {
                        out.push('\n');
                        write_block(out, v, indent);
                    }
                    v => {
                        out.push(' ');
                        write_scalar(out, v);
                        out.push('\n');
                    }
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                match v {
                    Value::Object(m) if !m.is_empty() => write_item(out, v, indent),
                    Value::Array(a) if !a.is_empty() => write_item(out, v, indent),
                    v => {
                        out.push_str(&pad);
                        out.push_str("- ");
                        write_scalar(out, v);
                        out.push('\n');
                    }
                }
            }
        }
        v => {
            out.push_str(&pad);
            write_scalar(out, v);
            out.push('\n');
        }
    }
}

/// A nested block as a sequence item: written two deeper, its first indent becomes `- `.
fn write_item(out: &mut String, value: &Value, indent: usize) {
    let start = out.len();
    write_block(out, value, indent + 2);
    out.replace_range(start + indent..start + indent + 2, "- ");
}

fn write_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// A string plain when no YAML reader (1.1 or 1.2) could take it for anything else,
/// double-quoted and escaped otherwise.
fn write_str(out: &mut String, s: &str) {
    if is_plain(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let plain_char = |c: char| {
        c.is_ascii_alphanumeric()
            || " _./-@%+=,:()".contains(c)
            || (!c.is_ascii() && !is_unsafe(c) && !c.is_whitespace() && c != '\u{feff}')
    };
    (first.is_ascii_alphabetic() || first == '/' || first == '_')
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && s.chars().all(plain_char)
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: &Value) -> String {
        let text = to_string(v).unwrap();
        let back: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(&back, v, "{text}");
        text
    }

    #[test]
    fn block_layout_as_serde_norway_writes_it() {
        let v = json!({
            "runtime": {"containerName": "web", "runtimeName": "docker"},
            "pid": 7,
            "args": ["/bin/true", "x y"],
            "empty": [],
            "none": null,
            "neg": -3,
            "flag": false,
            "items": [{"a": 1, "b": {"c": "d"}}, ["x"], "s"],
        });
        let text = round_trip(&v);
        assert_eq!(text, serde_norway::to_string(&v).unwrap());
    }

    #[test]
    fn hostile_strings_are_escaped_and_read_back_unchanged() {
        let hostile = [
            "evil\u{202e}txt",
            "\u{1b}]0;title\u{7}",
            "x\u{85}y\u{9b}z\u{7f}",
            "\u{2066}\u{2069}\u{200f}\u{61c}\u{2028}\u{2029}\u{feff}",
            "multi\nline\r\n",
            "",
            " lead",
            "trail ",
            "yes",
            "No",
            "~",
            "null",
            "1.0",
            "0x10",
            "- dash",
            "a: b",
            "a #c",
            "#c",
            "'q'",
            "\"dq\"",
            "back\\slash",
            "{}",
            "[x]",
            "*alias",
            "&anchor",
            "!tag",
            "%dir",
            "@at",
            "`tick",
            "key:",
            "é😀",
        ];
        for s in hostile {
            let v = json!({ s: s, "list": [s] });
            let text = round_trip(&v);
            assert!(!text.chars().any(|c| is_unsafe(c) && c != '\n'), "{text:?}");
        }
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        round_trip(&json!({ "all": all }));
    }
}
