//! Enrichment driven by field typedefs: boot timestamps → wall clock, uid/gid → names,
//! errno → name. Each derived field is added to the schema once; per event it is a table walk.

use std::time::{SystemTime, UNIX_EPOCH};

use super::errno::errno_name;
use super::users::NameTable;
use crate::event::{Event, FieldDef, Schema, Value};
use crate::gadget::spec::Semantic;

enum Task {
    Timestamp,
    User,
    Group,
    Errno,
}

pub struct BasicEnricher {
    tasks: Vec<(usize, usize, Task)>,
    users: Option<NameTable>,
    groups: Option<NameTable>,
    /// Wall-clock ns minus boot-clock ns, measured once.
    boot_offset_ns: i128,
}

/// `uid` → `user`, `loginuid` → `loginuser`, `gid` → `group`, `X_raw` → `X`.
pub fn derived_name(name: &str, semantic: Semantic) -> Option<String> {
    let (leaf_prefix, leaf) = match name.rsplit_once('.') {
        Some((p, l)) => (format!("{p}."), l),
        None => (String::new(), name),
    };
    let derived = match semantic {
        Semantic::Uid => leaf.strip_suffix("uid").map(|p| format!("{p}user"))?,
        Semantic::Gid => leaf.strip_suffix("gid").map(|p| format!("{p}group"))?,
        Semantic::Timestamp | Semantic::Errno => leaf.strip_suffix("_raw")?.to_string(),
        _ => return None,
    };
    Some(format!("{leaf_prefix}{derived}"))
}

fn boot_offset_ns() -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let boot = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
    wall - boot
}

pub fn format_wall_ns(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
        .unwrap_or_default()
}

impl BasicEnricher {
    /// Adds the derived fields for every raw field with a meaningful typedef.
    pub fn new(schema: &mut Schema, fields: &[(usize, Semantic)]) -> Self {
        let mut tasks = Vec::new();
        for &(src, semantic) in fields {
            let Some(name) = derived_name(&schema.fields[src].name, semantic) else {
                continue;
            };
            if schema.index(&name).is_some() {
                continue;
            }
            let task = match semantic {
                Semantic::Timestamp => Task::Timestamp,
                Semantic::Uid => Task::User,
                Semantic::Gid => Task::Group,
                Semantic::Errno => Task::Errno,
                _ => continue,
            };
            let mut def = FieldDef::new(&name);
            def.width = match task {
                Task::Timestamp => 30,
                Task::Errno => 8,
                _ => 16,
            };
            let dst = schema.push(def);
            tasks.push((src, dst, task));
        }
        let needs = |f: fn(&Task) -> bool| tasks.iter().any(|(_, _, t)| f(t));
        BasicEnricher {
            users: needs(|t| matches!(t, Task::User)).then(NameTable::users),
            groups: needs(|t| matches!(t, Task::Group)).then(NameTable::groups),
            boot_offset_ns: boot_offset_ns(),
            tasks,
        }
    }

    pub fn process(&self, event: &mut Event) {
        for (src, dst, task) in &self.tasks {
            let raw = event.get(*src);
            let value = match task {
                Task::Timestamp => match raw.as_u64() {
                    Some(ns) => Value::Str(format_wall_ns(ns as i128 + self.boot_offset_ns)),
                    None => Value::Null,
                },
                Task::User | Task::Group => {
                    let table = if matches!(task, Task::User) { &self.users } else { &self.groups };
                    match (raw.as_u64(), table) {
                        (Some(id), Some(t)) => Value::Str(t.name(id as u32)),
                        _ => Value::Null,
                    }
                }
                Task::Errno => Value::Str(raw.as_i64().map(errno_name).unwrap_or_default()),
            };
            event.set(*dst, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names() {
        assert_eq!(derived_name("uid", Semantic::Uid).as_deref(), Some("user"));
        assert_eq!(derived_name("loginuid", Semantic::Uid).as_deref(), Some("loginuser"));
        assert_eq!(derived_name("proc.gid", Semantic::Gid).as_deref(), Some("proc.group"));
        assert_eq!(derived_name("error_raw", Semantic::Errno).as_deref(), Some("error"));
        assert_eq!(derived_name("timestamp_raw", Semantic::Timestamp).as_deref(), Some("timestamp"));
        assert_eq!(derived_name("ts", Semantic::Timestamp), None);
    }

    #[test]
    fn wall_clock_format() {
        assert_eq!(format_wall_ns(1_000_000_001), "1970-01-01T00:00:01.000000001Z");
    }
}
