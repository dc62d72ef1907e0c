//! Enrichment driven by field typedefs: boot timestamps → wall clock, uid/gid → names,
//! errno → name. Each derived field is added to the schema once; per event it is a table walk.

use std::time::{SystemTime, UNIX_EPOCH};

use super::errno::errno_name;
use super::formats;
use super::users::NameTable;
use crate::event::{Event, FieldDef, Schema, Value};
use crate::gadget::spec::Semantic;

enum Task {
    Timestamp,
    User,
    Group,
    Errno,
    Signal,
    FileFlags,
    FileMode,
}

pub struct BasicEnricher {
    tasks: Vec<(usize, usize, Task)>,
    /// Per task: the last id looked up and its name (an exec storm repeats the same ids).
    last_names: Vec<Option<(u32, String)>>,
    users: Option<NameTable>,
    groups: Option<NameTable>,
    /// Wall-clock ns minus boot-clock ns, measured once.
    boot_offset_ns: i128,
    clock: WallClock,
}

/// Formats wall-clock timestamps like [`format_wall_ns`], calendar part computed once a second.
#[derive(Default)]
pub(crate) struct WallClock {
    /// The second the prefix is for, and `YYYY-MM-DDTHH:MM:SS` (None: out of chrono's range).
    cached: Option<(i64, Option<String>)>,
}

impl WallClock {
    pub(crate) fn write(&mut self, ns: i128, out: &mut String) {
        use std::fmt::Write;
        let secs = ns.div_euclid(1_000_000_000) as i64;
        let nanos = ns.rem_euclid(1_000_000_000) as u32;
        if self.cached.as_ref().is_none_or(|(s, _)| *s != secs) {
            let prefix = chrono::DateTime::from_timestamp(secs, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string());
            self.cached = Some((secs, prefix));
        }
        if let Some((_, Some(prefix))) = &self.cached {
            out.push_str(prefix);
            let _ = write!(out, ".{nanos:09}Z");
        }
    }
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
        Semantic::Timestamp
        | Semantic::Errno
        | Semantic::Signal
        | Semantic::FileFlags
        | Semantic::FileMode => leaf.strip_suffix("_raw")?.to_string(),
        _ => return None,
    };
    Some(format!("{leaf_prefix}{derived}"))
}

/// Wall-clock ns minus boot-time ns (CLOCK_BOOTTIME, what bpf_ktime_get_boot_ns reads) now.
pub fn boot_offset_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let boot = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
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
                Semantic::Signal => Task::Signal,
                Semantic::FileFlags => Task::FileFlags,
                Semantic::FileMode => Task::FileMode,
                _ => continue,
            };
            let mut def = FieldDef::new(&name);
            def.width = match task {
                Task::Timestamp => 30,
                Task::Errno => 8,
                Task::Signal => 10,
                Task::FileMode => 10,
                _ => 16,
            };
            let dst = schema.push(def);
            tasks.push((src, dst, task));
        }
        let needs = |f: fn(&Task) -> bool| tasks.iter().any(|(_, _, t)| f(t));
        BasicEnricher {
            last_names: tasks.iter().map(|_| None).collect(),
            clock: WallClock::default(),
            users: needs(|t| matches!(t, Task::User)).then(NameTable::users),
            groups: needs(|t| matches!(t, Task::Group)).then(NameTable::groups),
            boot_offset_ns: boot_offset_ns(),
            tasks,
        }
    }

    /// Fills the derived fields of one event, reusing the buffers of the values it replaces.
    pub fn process(&mut self, event: &mut Event) {
        let BasicEnricher {
            tasks,
            last_names,
            users,
            groups,
            boot_offset_ns,
            clock,
        } = self;
        for (k, (src, dst, task)) in tasks.iter().enumerate() {
            let raw = event.get(*src);
            let (raw_u64, raw_i64) = (raw.as_u64(), raw.as_i64());
            match task {
                Task::Timestamp => match raw_u64 {
                    Some(ns) => {
                        clock.write(ns as i128 + *boot_offset_ns, slot(event, *dst).str_buf())
                    }
                    None => event.set(*dst, Value::Null),
                },
                Task::User | Task::Group => {
                    let table = if matches!(task, Task::User) {
                        &*users
                    } else {
                        &*groups
                    };
                    match (raw_u64, table) {
                        (Some(id), Some(t)) => {
                            let id = id as u32;
                            let last = &mut last_names[k];
                            if last.as_ref().is_none_or(|(l, _)| *l != id) {
                                *last = Some((id, t.name(id)));
                            }
                            let name = last.as_ref().map(|(_, n)| n.as_str()).unwrap_or_default();
                            slot(event, *dst).assign_str(name);
                        }
                        _ => event.set(*dst, Value::Null),
                    }
                }
                Task::Errno => match raw_i64 {
                    Some(0) | None => slot(event, *dst).assign_str(""),
                    Some(e) => event.set(*dst, Value::Str(errno_name(e))),
                },
                // 0 is no signal (a kill(2) existence check, an exit by exit(2)): "".
                Task::Signal => match raw_i64 {
                    Some(0) | None => slot(event, *dst).assign_str(""),
                    Some(sig) => event.set(*dst, Value::Str(formats::signal_name(sig))),
                },
                Task::FileFlags => match raw_u64 {
                    Some(f) => event.set(*dst, Value::Str(formats::open_flags(f))),
                    None => event.set(*dst, Value::Null),
                },
                Task::FileMode => match raw_u64 {
                    Some(m) => event.set(*dst, Value::Str(formats::file_mode(m))),
                    None => event.set(*dst, Value::Null),
                },
            }
        }
    }
}

/// The value at `index`, growing the event with nulls if needed.
fn slot(event: &mut Event, index: usize) -> &mut Value {
    if event.values.len() <= index {
        event.values.resize(index + 1, Value::Null);
    }
    &mut event.values[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names() {
        assert_eq!(derived_name("uid", Semantic::Uid).as_deref(), Some("user"));
        assert_eq!(
            derived_name("loginuid", Semantic::Uid).as_deref(),
            Some("loginuser")
        );
        assert_eq!(
            derived_name("proc.gid", Semantic::Gid).as_deref(),
            Some("proc.group")
        );
        assert_eq!(
            derived_name("error_raw", Semantic::Errno).as_deref(),
            Some("error")
        );
        assert_eq!(
            derived_name("timestamp_raw", Semantic::Timestamp).as_deref(),
            Some("timestamp")
        );
        assert_eq!(derived_name("ts", Semantic::Timestamp), None);
    }

    #[test]
    fn wall_clock_format() {
        assert_eq!(
            format_wall_ns(1_000_000_001),
            "1970-01-01T00:00:01.000000001Z"
        );
    }

    #[test]
    fn cached_wall_clock_matches_chrono() {
        let mut clock = WallClock::default();
        let base: i128 = 1_795_000_000_123_456_789;
        for step in [
            0i128,
            1,
            999_999_999,
            1_000_000_000,
            86_399_999_999_999,
            -5,
            3_600_000_000_007,
        ] {
            let ns = base + step;
            let mut out = String::from("stale");
            out.clear();
            clock.write(ns, &mut out);
            assert_eq!(out, format_wall_ns(ns));
        }
        let mut out = String::new();
        clock.write(-1, &mut out);
        assert_eq!(out, format_wall_ns(-1));
    }
}
