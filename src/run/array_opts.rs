//! `ig run`'s options for gadgets whose data comes in arrays (map and BPF iterators):
//! `--map-fetch-interval`, `--map-fetch-count`, `--sort f1,-f2`, `--max-entries N`.

use std::cmp::Ordering;
use std::time::Duration;

use crate::event::{Event, Schema, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArrayOptions {
    /// Time between two reads; `None`: the gadget kind's default (1 s for a map iterator, at
    /// once for a BPF iterator).
    pub fetch_interval: Option<Duration>,
    /// Reads before the run ends (0: until stopped); `None`: the kind's default (0 for a map
    /// iterator, 1 for a BPF iterator: a snapshot).
    pub fetch_count: Option<u64>,
    /// Sort keys as typed: a field name, `-` in front for descending.
    pub sort: Vec<String>,
    /// Rows kept of each array after sorting.
    pub max_entries: Option<usize>,
}

impl ArrayOptions {
    /// Whether the user set any of them (a tracer refuses them).
    pub fn any_set(&self) -> bool {
        *self != ArrayOptions::default()
    }
}

/// Parses `--map-fetch-interval`: a number with a unit (`500ms`, `1s`, `2m`), or seconds
/// when bare (`2`, `0.5`). Refuses zero: reads back to back would spin.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 1s, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 * 365.0 {
        return Err(format!("{s:?} must be more than 0 and at most a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// One `--sort` key resolved against a data source's schema.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SortKey {
    field: usize,
    descending: bool,
}

/// `--sort` compiled for a schema.
#[derive(Debug, Clone, Default)]
pub struct Sorter {
    keys: Vec<SortKey>,
}

impl Sorter {
    /// Errors name the unknown field and list the known ones.
    pub fn compile(sort: &[String], schema: &Schema) -> Result<Sorter, String> {
        let mut keys = Vec::new();
        for raw in sort.iter().flat_map(|s| s.split(',')) {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let (name, descending) = match raw.strip_prefix('-') {
                Some(n) => (n, true),
                None => (raw.strip_prefix('+').unwrap_or(raw), false),
            };
            let field = schema.index(name).ok_or_else(|| {
                let known: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
                format!(
                    "--sort: unknown field {name:?} (fields: {})",
                    known.join(", ")
                )
            })?;
            keys.push(SortKey { field, descending });
        }
        Ok(Sorter { keys })
    }

    /// Sorts rows by the keys in order (stable: rows equal on every key keep their order).
    pub fn sort(&self, rows: &mut [Event]) {
        if self.keys.is_empty() {
            return;
        }
        rows.sort_by(|a, b| {
            for k in &self.keys {
                let o = compare(a.get(k.field), b.get(k.field));
                let o = if k.descending { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
}

/// Numbers by value, strings by bytes, booleans false first; an empty value sorts last.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::U64(x), Value::U64(y)) => x.cmp(y),
        (Value::I64(x), Value::I64(y)) => x.cmp(y),
        (Value::U64(x), Value::I64(y)) => (*x as i128).cmp(&(*y as i128)),
        (Value::I64(x), Value::U64(y)) => (*x as i128).cmp(&(*y as i128)),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        _ => a.display().cmp(&b.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FieldDef;

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

    #[test]
    fn sorts_by_keys_in_order() {
        let s = Sorter::compile(&["comm,-pid".into()], &schema()).unwrap();
        let mut rows = vec![row(1, "b"), row(2, "a"), row(3, "b")];
        s.sort(&mut rows);
        let got: Vec<u64> = rows.iter().map(|r| r.get(0).as_u64().unwrap()).collect();
        assert_eq!(got, [2, 3, 1]);
    }

    #[test]
    fn unknown_sort_field_is_named() {
        let err = Sorter::compile(&["-nope".into()], &schema()).unwrap_err();
        assert!(err.contains("unknown field \"nope\""), "{err}");
        assert!(err.contains("pid, comm"), "{err}");
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("-1s").is_err());
        assert!(parse_interval("1x").is_err());
        assert!(parse_interval("").is_err());
    }
}
