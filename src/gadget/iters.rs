//! Gadgets whose data is read in arrays rather than streamed: map iterators
//! (`GADGET_MAPITER`) and BPF iterators (`GADGET_ITER`), as `bpf/gadget/macros.h` marks them
//! (Inspektor Gadget's marker names: `gadget_mapiter_<name>___<map>`,
//! `gadget_iter_<name>___<struct>___<prog>[___<prog>…]`). Pure code: BTF and ELF only.

use super::btf::Kind;
use super::elf::BpfElf;
use super::spec::{event_layout, EventLayout, RawField, Tracer};
use super::GadgetError;

const MAPITER_PREFIX: &str = "gadget_mapiter_";
const ITER_PREFIX: &str = "gadget_iter_";

/// A map iterator: hash map `map` is read and drained every interval; a row is its key's
/// fields followed by its value's (a row is `key ‖ value` bytes, decoded with `layout`).
#[derive(Debug, Clone, PartialEq)]
pub struct MapIter {
    pub name: String,
    pub map: String,
    pub key_size: u32,
    pub value_size: u32,
    pub layout: EventLayout,
}

/// What a BPF iterator program iterates over: the part after `iter/` of its section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IterKind {
    Task,
    TaskFile,
    /// Sockets of the reading thread's network namespace: read once per namespace.
    Tcp,
    Udp,
}

impl IterKind {
    pub fn of_section(section: &str) -> Option<IterKind> {
        let kind = section
            .strip_prefix("iter/")
            .or_else(|| section.strip_prefix("iter.s/"))?;
        match kind {
            "task" => Some(IterKind::Task),
            "task_file" => Some(IterKind::TaskFile),
            "tcp" => Some(IterKind::Tcp),
            "udp" => Some(IterKind::Udp),
            _ => None,
        }
    }

    /// What follows `iter/` in its section name.
    pub fn as_str(self) -> &'static str {
        match self {
            IterKind::Task => "task",
            IterKind::TaskFile => "task_file",
            IterKind::Tcp => "tcp",
            IterKind::Udp => "udp",
        }
    }

    /// Whether the kernel iterates over the reader's network namespace only.
    pub fn per_netns(self) -> bool {
        matches!(self, IterKind::Tcp | IterKind::Udp)
    }
}

/// A BPF iterator: its programs write `struct <layout.struct_name>` records with
/// `bpf_seq_write`; one read of every program is one array (their union).
#[derive(Debug, Clone, PartialEq)]
pub struct Iter {
    pub name: String,
    pub layout: EventLayout,
    /// Program name and what it iterates over.
    pub programs: Vec<(String, IterKind)>,
}

impl MapIter {
    /// The data source as the pipeline builds its schema from it.
    pub fn as_tracer(&self) -> Tracer {
        Tracer {
            name: self.name.clone(),
            map: self.map.clone(),
            layout: self.layout.clone(),
            perf: false,
        }
    }
}

impl Iter {
    /// Whether any of its programs lists one network namespace's sockets per read.
    pub fn per_netns(&self) -> bool {
        self.programs.iter().any(|(_, k)| k.per_netns())
    }

    pub fn as_tracer(&self) -> Tracer {
        Tracer {
            name: self.name.clone(),
            map: String::new(),
            layout: self.layout.clone(),
            perf: false,
        }
    }
}

/// The fields of a map's key or value: a struct's members, or one field named `member` for
/// a scalar (`__type(key, __u32)`).
fn part_layout(
    elf: &BpfElf,
    iter: &str,
    map: &str,
    member: &str,
) -> Result<EventLayout, GadgetError> {
    let bad = |reason: String| GadgetError::Tracer {
        tracer: iter.to_string(),
        reason,
    };
    let ty = elf.map_member_target(map, member).ok_or_else(|| {
        bad(format!(
            "map `{map}` declares no {member} type (__type({member}, struct …)), so its {member}s cannot be decoded"
        ))
    })?;
    let btf = &elf.btf;
    let concrete = btf.resolve(ty);
    let name = btf
        .get(concrete)
        .map(|t| t.name.clone())
        .unwrap_or_default();
    match btf.get(concrete).map(|t| &t.kind) {
        Some(Kind::Struct { .. }) | Some(Kind::Union { .. }) => event_layout(btf, ty, &name),
        Some(Kind::Int { .. }) | Some(Kind::Enum { .. }) => {
            // A scalar: decode it as a struct's only member would be.
            let size = btf.size_of(ty).unwrap_or(0);
            let (signed, is_bool) = match btf.get(concrete).map(|t| &t.kind) {
                Some(Kind::Int {
                    signed, is_bool, ..
                }) => (*signed, *is_bool),
                Some(Kind::Enum { signed, .. }) => (*signed, false),
                _ => (false, false),
            };
            let kind = if is_bool {
                super::spec::FieldKind::Bool
            } else {
                super::spec::FieldKind::Int { size, signed }
            };
            Ok(EventLayout {
                struct_name: name,
                size,
                fields: vec![RawField {
                    name: member.to_string(),
                    offset: 0,
                    kind,
                    semantic: super::spec::Semantic::Plain,
                }],
            })
        }
        _ => Err(bad(format!(
            "the {member} type of map `{map}` is neither a struct nor an integer"
        ))),
    }
}

/// `enum bpf_map_type` (include/uapi/linux/bpf.h): HASH and LRU_HASH are drained; the per-CPU
/// kinds (PERCPU_HASH, LRU_PERCPU_HASH) have one value per CPU, which rows do not hold yet.
const HASH_KINDS: [u32; 2] = [1, 9];
const PERCPU_HASH_KINDS: [u32; 2] = [5, 10];

pub fn find_map_iters(elf: &BpfElf) -> Result<Vec<MapIter>, GadgetError> {
    let mut out: Vec<MapIter> = Vec::new();
    for var in elf.var_names() {
        let Some(rest) = var.strip_prefix(MAPITER_PREFIX) else {
            continue;
        };
        let Some((name, map)) = rest.split_once("___") else {
            return Err(GadgetError::Tracer {
                tracer: rest.to_string(),
                reason: format!("marker `{var}` is not gadget_mapiter_<name>___<map>"),
            });
        };
        let bad = |reason: String| GadgetError::Tracer {
            tracer: name.to_string(),
            reason,
        };
        if !elf.maps.iter().any(|m| m == map) {
            return Err(bad(format!("map `{map}` is not defined")));
        }
        match elf.map_def(map, "type") {
            Some(t) if HASH_KINDS.contains(&t) => {}
            Some(t) if PERCPU_HASH_KINDS.contains(&t) => {
                return Err(bad(format!(
                    "map `{map}` is a per-CPU hash map; ig reads BPF_MAP_TYPE_HASH and BPF_MAP_TYPE_LRU_HASH maps"
                )))
            }
            _ => {
                return Err(bad(format!(
                    "map `{map}` is not a hash map (BPF_MAP_TYPE_HASH or BPF_MAP_TYPE_LRU_HASH)"
                )))
            }
        }
        if out.iter().any(|m| m.name == name) {
            continue;
        }
        let key = part_layout(elf, name, map, "key")?;
        let value = part_layout(elf, name, map, "value")?;
        let shift = key.fields.len();
        let mut fields = key.fields.clone();
        for mut f in value.fields {
            if let super::spec::FieldKind::StrList { len, count } = f.kind {
                f.kind = super::spec::FieldKind::StrList {
                    len,
                    count: count.map(|c| c + shift),
                };
            }
            if fields.iter().any(|k| k.name == f.name) {
                return Err(bad(format!(
                    "field `{}` is in both the key and the value of map `{map}`; rename one",
                    f.name
                )));
            }
            f.offset += key.size;
            fields.push(f);
        }
        let layout = EventLayout {
            struct_name: format!("{}+{}", key.struct_name, value.struct_name),
            size: key.size + value.size,
            fields,
        };
        out.push(MapIter {
            name: name.to_string(),
            map: map.to_string(),
            key_size: key.size,
            value_size: value.size,
            layout,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn find_iters(elf: &BpfElf) -> Result<Vec<Iter>, GadgetError> {
    let mut out: Vec<Iter> = Vec::new();
    for var in elf.var_names() {
        let Some(rest) = var.strip_prefix(ITER_PREFIX) else {
            continue;
        };
        let parts: Vec<&str> = rest.split("___").collect();
        let [name, struct_name, progs @ ..] = &parts[..] else {
            return Err(GadgetError::Tracer {
                tracer: rest.to_string(),
                reason: format!("marker `{var}` is not gadget_iter_<name>___<struct>___<prog>"),
            });
        };
        let bad = |reason: String| GadgetError::Tracer {
            tracer: name.to_string(),
            reason,
        };
        if progs.is_empty() {
            return Err(bad(format!("marker `{var}` names no program")));
        }
        if out.iter().any(|i| i.name == *name) {
            continue;
        }
        let id = elf
            .btf
            .struct_by_name(struct_name)
            .ok_or_else(|| bad(format!("struct `{struct_name}` is not in the object's BTF")))?;
        let layout = event_layout(&elf.btf, id, struct_name)?;
        if layout.size == 0 {
            return Err(bad(format!("struct `{struct_name}` is empty")));
        }
        let mut programs = Vec::new();
        for p in progs {
            let info = elf
                .programs
                .iter()
                .find(|i| i.name == *p)
                .ok_or_else(|| bad(format!("program `{p}` is not in the object")))?;
            let kind = IterKind::of_section(&info.section).ok_or_else(|| {
                bad(format!(
                    "program `{p}` is in section `{}`; ig runs iterators of iter/task, iter/task_file, iter/tcp and iter/udp",
                    info.section
                ))
            })?;
            programs.push((p.to_string(), kind));
        }
        out.push(Iter {
            name: name.to_string(),
            layout,
            programs,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::IterKind;

    #[test]
    fn iter_kinds_from_sections() {
        assert_eq!(IterKind::of_section("iter/task"), Some(IterKind::Task));
        assert_eq!(
            IterKind::of_section("iter/task_file"),
            Some(IterKind::TaskFile)
        );
        assert_eq!(IterKind::of_section("iter.s/tcp"), Some(IterKind::Tcp));
        assert!(IterKind::of_section("iter/udp").unwrap().per_netns());
        assert_eq!(IterKind::of_section("iter/bpf_map"), None);
        assert_eq!(IterKind::of_section("tracepoint/x"), None);
    }
}
