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

/// One field of a data source and how columns show it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    pub name: String,
    pub description: String,
    pub width: usize,
    pub align: Align,
    pub hidden: bool,
}

impl FieldDef {
    pub fn new(name: &str) -> Self {
        FieldDef {
            name: name.to_string(),
            description: String::new(),
            width: 16,
            align: Align::Left,
            hidden: false,
        }
    }

    /// Applies `columns.*` and `description` annotations from gadget.yaml.
    pub fn annotate(&mut self, key: &str, value: &str) {
        match key {
            "description" => self.description = value.to_string(),
            "columns.width" => {
                if let Ok(w) = value.parse() {
                    self.width = w;
                }
            }
            "columns.hidden" => self.hidden = value == "true",
            "columns.alignment" => {
                self.align = if value == "right" { Align::Right } else { Align::Left }
            }
            _ => {}
        }
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
        self.fields.iter().position(|f| f.name.eq_ignore_ascii_case(name))
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
