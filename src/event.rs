//! The data every stage passes along: a schema of named fields and events holding one value per
//! field, in schema order.

use serde::ser::{Serialize, SerializeSeq, Serializer};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    U64(u64),
    I64(i64),
    Bool(bool),
    Str(String),
    List(Vec<String>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64(v) => Some(*v),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::I64(v) => Some(*v),
            Value::U64(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Makes this a `Str` holding `s`, reusing the string's buffer when it already is one (the
    /// hot path rewrites the same event slots for every record).
    pub fn assign_str(&mut self, s: &str) {
        match self {
            Value::Str(buf) => {
                buf.clear();
                buf.push_str(s);
            }
            _ => *self = Value::Str(s.to_owned()),
        }
    }

    /// A `Str` to write into, emptied, reusing the buffer when this already is one.
    pub fn str_buf(&mut self) -> &mut String {
        if !matches!(self, Value::Str(_)) {
            *self = Value::Str(String::new());
        }
        match self {
            Value::Str(buf) => {
                buf.clear();
                buf
            }
            _ => unreachable!(),
        }
    }

    /// A `List` to fill, reusing its strings' buffers; call [`Value::push_item`] then
    /// [`Value::end_list`].
    fn list_buf(&mut self) -> &mut Vec<String> {
        if !matches!(self, Value::List(_)) {
            *self = Value::List(Vec::new());
        }
        match self {
            Value::List(items) => items,
            _ => unreachable!(),
        }
    }

    /// Appends text as how the column shows it, without allocating.
    pub fn write_display(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Value::Null => {}
            Value::U64(v) => {
                let _ = write!(out, "{v}");
            }
            Value::I64(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
            Value::Str(s) => out.push_str(s),
            Value::List(items) => {
                for (k, i) in items.iter().enumerate() {
                    if k > 0 {
                        out.push(' ');
                    }
                    out.push_str(i);
                }
            }
        }
    }

    /// The text a column shows.
    pub fn display(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::U64(v) => v.to_string(),
            Value::I64(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
            Value::Str(s) => s.clone(),
            Value::List(items) => items.join(" "),
        }
    }
}

/// Fills a `List` value in place: item `n` reuses the buffer of the previous record's item `n`.
pub struct ListFiller<'a> {
    items: &'a mut Vec<String>,
    len: usize,
}

impl<'a> ListFiller<'a> {
    pub fn new(value: &'a mut Value) -> Self {
        ListFiller {
            items: value.list_buf(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, s: &str) {
        if self.len < self.items.len() {
            let item = &mut self.items[self.len];
            item.clear();
            item.push_str(s);
        } else {
            self.items.push(s.to_owned());
        }
        self.len += 1;
    }
}

impl Drop for ListFiller<'_> {
    fn drop(&mut self) {
        self.items.truncate(self.len);
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::U64(v) => s.serialize_u64(*v),
            Value::I64(v) => s.serialize_i64(*v),
            Value::Bool(v) => s.serialize_bool(*v),
            Value::Str(v) => s.serialize_str(v),
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Where a cell too wide for its column is cut (`columns.ellipsis`, Inspektor Gadget's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ellipsis {
    /// `end` (the default): the beginning is kept, `…` last.
    #[default]
    End,
    /// `start`: the end is kept, `…` first (paths).
    Start,
    /// `middle`: both ends kept.
    Middle,
    /// `none`: cut without a mark.
    None,
}

impl Ellipsis {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "end" | "" => Ellipsis::End,
            "start" => Ellipsis::Start,
            "middle" => Ellipsis::Middle,
            "none" => Ellipsis::None,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ellipsis::End => "end",
            Ellipsis::Start => "start",
            Ellipsis::Middle => "middle",
            Ellipsis::None => "none",
        }
    }
}

/// One field of a data source and how columns show it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    pub name: String,
    pub description: String,
    pub width: usize,
    pub align: Align,
    pub hidden: bool,
    pub ellipsis: Ellipsis,
    /// Integers print as `0x1f` in columns (`columns.hex`); JSON keeps numbers.
    pub hex: bool,
}

/// The annotations [`FieldDef::annotate`] knows (Inspektor Gadget's names). Others are
/// ignored, with a debug message.
pub const KNOWN_ANNOTATIONS: [&str; 9] = [
    "description",
    "template",
    "columns.width",
    "columns.minwidth",
    "columns.maxwidth",
    "columns.alignment",
    "columns.ellipsis",
    "columns.hidden",
    "columns.hex",
];

/// Inspektor Gadget's field templates: (name, width, right-aligned). Applied before the
/// field's own annotations, which win.
const TEMPLATES: [(&str, usize, bool); 7] = [
    ("pid", 7, true),
    ("uid", 8, true),
    ("gid", 8, true),
    ("comm", 16, false),
    ("ns", 12, true),
    ("timestamp", 30, false),
    ("syscall", 18, false),
];

impl FieldDef {
    pub fn new(name: &str) -> Self {
        FieldDef {
            name: name.to_string(),
            description: String::new(),
            width: 16,
            align: Align::Left,
            hidden: false,
            ellipsis: Ellipsis::End,
            hex: false,
        }
    }

    /// Applies `columns.*`, `template` and `description` annotations from gadget.yaml. A
    /// value that does not parse leaves the field as it was. Returns false for an annotation
    /// ig does not know (the caller says so at debug level); never an error.
    pub fn annotate(&mut self, key: &str, value: &str) -> bool {
        let truthy = value == "true";
        match key {
            "description" => self.description = value.to_string(),
            "template" => match TEMPLATES.iter().find(|(t, ..)| *t == value) {
                Some(&(_, width, right)) => {
                    self.width = width;
                    self.align = if right { Align::Right } else { Align::Left };
                }
                None => return false,
            },
            "columns.width" => {
                if let Ok(w) = value.parse() {
                    self.width = w;
                }
            }
            // A streamed table has no terminal width to fit: the bounds clamp the width.
            "columns.minwidth" => {
                if let Ok(w) = value.parse::<usize>() {
                    self.width = self.width.max(w);
                }
            }
            "columns.maxwidth" => {
                if let Ok(w) = value.parse::<usize>() {
                    self.width = self.width.min(w.max(1));
                }
            }
            "columns.hidden" => self.hidden = truthy,
            "columns.hex" => self.hex = truthy,
            "columns.ellipsis" => match Ellipsis::parse(value) {
                Some(e) => self.ellipsis = e,
                None => return false,
            },
            "columns.alignment" => {
                self.align = if value == "right" {
                    Align::Right
                } else {
                    Align::Left
                }
            }
            _ => return false,
        }
        true
    }
}

/// The fields of a data source, in display order.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub name: String,
    pub fields: Vec<FieldDef>,
}

impl Schema {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Appends a field and returns its index.
    pub fn push(&mut self, field: FieldDef) -> usize {
        self.fields.push(field);
        self.fields.len() - 1
    }
}

/// One event: a value per schema field (possibly more fields than the decoder produced, filled
/// by enrichers).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub values: Vec<Value>,
}

impl Event {
    pub fn get(&self, index: usize) -> &Value {
        self.values.get(index).unwrap_or(&Value::Null)
    }

    pub fn set(&mut self, index: usize, value: Value) {
        if self.values.len() <= index {
            self.values.resize(index + 1, Value::Null);
        }
        self.values[index] = value;
    }
}
