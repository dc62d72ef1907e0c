//! `--filter` (`-F`): which events reach the output, as Inspektor Gadget's filter operator
//! spells it: `field==value`, `!=`, `<`, `<=`, `>`, `>=`, `~regex`; a comma joins conditions
//! (all must hold), `\,` is a comma inside a value. Any field of the schema, enriched ones
//! included (`runtime.containerName`); a list field (`args`) is its items joined by spaces.
//!
//! Numbers compare as numbers when both sides are numbers, everything else as text.

use regex::Regex;

use crate::event::{Event, Schema, Value};

/// A compiled filter: every condition must hold.
#[derive(Debug, Clone)]
pub struct Filter {
    conds: Vec<Cond>,
}

#[derive(Debug, Clone)]
struct Cond {
    field: usize,
    op: Op,
    text: String,
    number: Option<i128>,
    regex: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
}

/// One parsed condition, before it is tied to a schema: `(field, op, value)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub value: String,
}

/// Errors: the expression and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("invalid filter {expr:?}: {reason}")]
    Syntax { expr: String, reason: String },
    #[error("invalid filter {expr:?}: no field `{field}` (fields: {known})")]
    UnknownField {
        expr: String,
        field: String,
        known: String,
    },
    #[error("invalid filter {expr:?}: bad regular expression: {reason}")]
    Regex { expr: String, reason: String },
}

/// Splits `a==1,b~x\,y` into its conditions.
///
/// Errors: [`FilterError::Syntax`] for an empty condition, a missing field name or operator.
pub fn parse(expr: &str) -> Result<Vec<Condition>, FilterError> {
    let syntax = |reason: &str| FilterError::Syntax {
        expr: expr.to_string(),
        reason: reason.to_string(),
    };
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                chars.next();
                part.push(',');
            }
            ',' => parts.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    parts.push(part);
    let mut conds = Vec::new();
    for part in parts {
        let name_end = part
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(part.len());
        let (field, rest) = part.split_at(name_end);
        if field.is_empty() {
            return Err(syntax(&format!(
                "{part:?} does not start with a field name"
            )));
        }
        let (op, value) = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("~", Op::Match),
        ]
        .iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|v| (*op, v)))
        .ok_or_else(|| {
            syntax(&format!(
                "{part:?}: after `{field}` comes one of ==, !=, <, <=, >, >=, ~"
            ))
        })?;
        conds.push(Condition {
            field: field.to_string(),
            op,
            value: value.to_string(),
        });
    }
    Ok(conds)
}

impl Filter {
    /// Compiles `exprs` (each possibly several comma-joined conditions) against `schema`.
    ///
    /// Errors: a syntax error, a field the schema does not have, a bad regex.
    pub fn compile(exprs: &[String], schema: &Schema) -> Result<Option<Filter>, FilterError> {
        let mut conds = Vec::new();
        for expr in exprs {
            for c in parse(expr)? {
                let field = schema
                    .index(&c.field)
                    .ok_or_else(|| FilterError::UnknownField {
                        expr: expr.clone(),
                        field: c.field.clone(),
                        known: schema
                            .fields
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
                let regex = match c.op {
                    Op::Match => Some(Regex::new(&c.value).map_err(|e| FilterError::Regex {
                        expr: expr.clone(),
                        reason: e.to_string(),
                    })?),
                    _ => None,
                };
                conds.push(Cond {
                    field,
                    op: c.op,
                    number: c.value.trim().parse::<i128>().ok(),
                    text: c.value,
                    regex,
                });
            }
        }
        Ok((!conds.is_empty()).then_some(Filter { conds }))
    }

    /// Whether every condition holds for `event`.
    pub fn matches(&self, event: &Event) -> bool {
        self.conds.iter().all(|c| c.holds(event.get(c.field)))
    }
}

impl Cond {
    fn holds(&self, value: &Value) -> bool {
        let number = match value {
            Value::U64(v) => Some(*v as i128),
            Value::I64(v) => Some(*v as i128),
            _ => None,
        };
        if let (Some(v), Some(n), false) = (number, self.number, self.op == Op::Match) {
            return self.compare(v.cmp(&n));
        }
        let text: std::borrow::Cow<'_, str> = match value {
            Value::Str(s) => s.as_str().into(),
            Value::List(items) => items.join(" ").into(),
            Value::U64(v) => v.to_string().into(),
            Value::I64(v) => v.to_string().into(),
            Value::Bool(b) => b.to_string().into(),
            Value::Null => "".into(),
        };
        match &self.regex {
            Some(re) => re.is_match(&text),
            None => self.compare(text.as_ref().cmp(self.text.as_str())),
        }
    }

    fn compare(&self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self.op {
            Op::Eq => ord == Equal,
            Op::Ne => ord != Equal,
            Op::Lt => ord == Less,
            Op::Le => ord != Greater,
            Op::Gt => ord == Greater,
            Op::Ge => ord != Less,
            Op::Match => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FieldDef;

    fn schema() -> Schema {
        let mut s = Schema::default();
        for n in [
            "comm",
            "pid",
            "args",
            "runtime.containerName",
            "error_raw",
            "upper_layer",
        ] {
            s.push(FieldDef::new(n));
        }
        s
    }

    fn event(comm: &str, pid: u64, args: &[&str], container: &str, err: i64) -> Event {
        Event {
            values: vec![
                Value::Str(comm.into()),
                Value::U64(pid),
                Value::List(args.iter().map(|a| a.to_string()).collect()),
                Value::Str(container.into()),
                Value::I64(err),
                Value::Bool(false),
            ],
        }
    }

    fn keeps(expr: &str, e: &Event) -> bool {
        Filter::compile(&[expr.to_string()], &schema())
            .unwrap()
            .unwrap()
            .matches(e)
    }

    #[test]
    fn every_operator() {
        let e = event("cat", 42, &["/bin/cat", "a,b"], "web", -2);
        assert!(keeps("comm==cat", &e));
        assert!(!keeps("comm==ca", &e));
        assert!(keeps("comm!=dog", &e));
        assert!(keeps("pid>41", &e) && !keeps("pid>42", &e));
        assert!(keeps("pid>=42", &e) && keeps("pid<=42", &e) && keeps("pid<43", &e));
        // Numbers as numbers: 9 < 10 (text would say otherwise).
        assert!(keeps("pid<100", &e) && !keeps("pid<9", &e));
        assert!(keeps("error_raw<0", &e) && keeps("error_raw==-2", &e));
        assert!(keeps("comm~^c.t$", &e) && !keeps("comm~^d", &e));
        assert!(keeps("args~cat a", &e));
        assert!(keeps("args==/bin/cat a\\,b", &e));
        assert!(keeps("runtime.containerName==web,pid==42", &e));
        assert!(!keeps("runtime.containerName==web,pid==43", &e));
        assert!(keeps("upper_layer==false", &e));
        assert!(keeps("comm>ca", &e) && keeps("comm<cb", &e));
    }

    #[test]
    fn bad_filters_name_what_is_wrong() {
        let err = |e: &str| {
            Filter::compile(&[e.to_string()], &schema())
                .unwrap_err()
                .to_string()
        };
        assert!(err("nosuch==1").contains("no field `nosuch` (fields: comm, pid"));
        assert!(err("comm~(").contains("bad regular expression"));
        assert!(err("comm").contains("after `comm` comes one of"));
        assert!(err("==x").contains("does not start with a field name"));
        assert!(err("comm==a,").contains("does not start with a field name"));
        assert!(Filter::compile(&[], &schema()).unwrap().is_none());
    }
}
