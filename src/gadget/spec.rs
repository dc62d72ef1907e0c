//! What a gadget is, as the runtime sees it: tracers with their event layouts, parameters and
//! lost-event counters, all discovered from the object's BTF and `gadget.yaml`.

use super::btf::{Btf, Kind, TypeId};
use super::elf::{BpfElf, ProgramInfo};
use super::metadata::Metadata;
use super::GadgetError;

const TRACER_PREFIX: &str = "gadget_tracer_";
const RECORDER_PREFIX: &str = "gadget_recorder_";
const PARAM_PREFIX: &str = "gadget_param_";
const LOST_PREFIX: &str = "gadget_lost__";
const LOST_SAMPLES_SUFFIX: &str = "_lost_samples";
/// The largest event struct a tracer may have (a ring buffer record is rarely more than a few
/// KiB).
pub const MAX_EVENT_SIZE: u32 = 16 << 20;

/// What a typedef on a field tells the enrichers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    Plain,
    MntnsId,
    /// `gadget_mntns_nsid`: the mount namespace's never-reused id, beside `MntnsId`.
    MntnsNsid,
    Timestamp,
    Uid,
    Gid,
    Errno,
    Syscall,
    Pid,
    Tid,
    Comm,
    Cpu,
    /// `gadget_signal`: a signal number (→ `SIGKILL`).
    Signal,
    /// `gadget_file_flags`: open(2) flags (→ `O_RDONLY|O_CLOEXEC`).
    FileFlags,
    /// `gadget_file_mode`: mode bits (→ `-rw-r--r--`).
    FileMode,
    /// A flight recorder's record (`gadget/recorder.h`, `gadget/types.h`): its sequence number.
    RecordSeq,
    /// 0 empty, 1 syscall enter, 2 exit, 3 more captured data of an enter.
    RecordKind,
    /// An array of syscall arguments (exit: `[0]` is the return value unless `SyscallRet`).
    SyscallArgs,
    SyscallRet,
    /// Captured user memory: which argument, how many bytes, flags, the bytes.
    CaptureArg,
    CaptureLen,
    CaptureFlags,
    Capture,
    /// `gadget_exec_key` (`gadget/process.h`): an image's start, boot ns; with the pid, its
    /// exec_id.
    ExecKey,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    Int {
        size: u32,
        signed: bool,
    },
    Bool,
    Str {
        len: u32,
    },
    /// NUL-separated strings; `count` is the index of a sibling field that says how many.
    StrList {
        len: u32,
        count: Option<usize>,
    },
    Enum {
        size: u32,
        signed: bool,
        values: Vec<(String, i64)>,
    },
    Bytes {
        len: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RawField {
    pub name: String,
    pub offset: u32,
    pub kind: FieldKind,
    pub semantic: Semantic,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventLayout {
    pub struct_name: String,
    pub size: u32,
    pub fields: Vec<RawField>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tracer {
    pub name: String,
    pub map: String,
    pub layout: EventLayout,
    /// The map is a `BPF_MAP_TYPE_PERF_EVENT_ARRAY` (read per CPU), not a ring buffer.
    pub perf: bool,
}

/// A flight recorder (`GADGET_RECORDER`, `gadget/recorder.h`): the array map `map` holds one
/// bounded buffer of records per mount namespace; the record's fields get their meaning from
/// their typedefs.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorder {
    pub name: String,
    pub map: String,
    pub layout: EventLayout,
}

/// The maps and globals `gadget/recorder.h` defines, by their fixed names.
pub mod recorder_api {
    pub const SLOTS: &str = "gadget_recorder_slots";
    pub const HEADS: &str = "gadget_recorder_heads";
    pub const FREE_SLOTS: &str = "gadget_recorder_free_slots";
    pub const CGROUPS: &str = "gadget_recorder_cgroups";
    pub const SYSCALL_FILTER: &str = "gadget_syscall_filter_map";
    pub const LOST_CONTAINERS: &str = "gadget_recorder_lost_containers";
    pub const LOST_RECORDS: &str = "gadget_recorder_lost_records";
    /// Parameters (variables): records per container, containers with a buffer.
    pub const RECORDS_VAR: &str = "gadget_recorder_records";
    pub const MAX_CONTAINERS_VAR: &str = "gadget_recorder_max_containers";
    pub const ALL_MAPS: [&str; 5] = [SLOTS, HEADS, FREE_SLOTS, CGROUPS, SYSCALL_FILTER];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Bool,
    Int {
        size: u32,
        signed: bool,
    },
    /// A `char[len]` (e.g. Inspektor Gadget's `targ_comm`): a string of at most `len - 1`
    /// bytes, NUL-padded.
    Str {
        len: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub var: String,
    pub key: String,
    pub description: String,
    /// The default shown to users (gadget.yaml's, else the compiled one).
    pub default: String,
    pub ty: ParamType,
    pub offset: u32,
    pub size: u32,
}

#[derive(Debug, Clone)]
pub struct GadgetSpec {
    pub metadata: Metadata,
    pub tracers: Vec<Tracer>,
    /// Flight recorders (at most one).
    pub recorders: Vec<Recorder>,
    pub params: Vec<ParamSpec>,
    /// Map iterators (`GADGET_MAPITER`, `gadget::iters`).
    pub map_iters: Vec<super::iters::MapIter>,
    /// BPF iterators (`GADGET_ITER`, `gadget::iters`).
    pub iters: Vec<super::iters::Iter>,
    pub programs: Vec<ProgramInfo>,
    pub maps: Vec<String>,
    /// Ring buffer map → offset of its lost counter in `.bss`.
    pub lost_counters: Vec<(String, u32)>,
    /// Tracer map → its per-CPU lost counter map `<map>_lost_samples` (Inspektor Gadget's
    /// buffer.h: a `BPF_MAP_TYPE_PERCPU_ARRAY` of one `__u64`, summed over the CPUs).
    pub lost_sample_maps: Vec<(String, String)>,
    /// The container filter map is keyed by the inode alone (`__u64`, Inspektor Gadget's
    /// mntns_filter.h), not by `struct gadget_mntns_key`.
    pub inode_filter: bool,
    /// Every `.bss` global: name, offset.
    pub bss_vars: Vec<(String, u32)>,
    /// The runtime's own knobs in `.rodata` (`gadget_filter_by_mntns`, ...): name, offset, size.
    pub runtime_vars: Vec<(String, u32, u32)>,
}

impl GadgetSpec {
    /// Analyses an object against its metadata; errors when they disagree.
    pub fn analyze(object: &[u8], metadata: Metadata) -> Result<Self, GadgetError> {
        let elf = BpfElf::parse(object)?;
        let tracers = find_tracers(&elf)?;
        let recorders = find_recorders(&elf)?;
        let params = find_params(&elf, &metadata)?;
        let map_iters = super::iters::find_map_iters(&elf)?;
        let iters = super::iters::find_iters(&elf)?;
        let lost_counters = elf
            .var_names()
            .filter_map(|v| v.strip_prefix(LOST_PREFIX))
            .filter_map(|map| {
                let (off, _) = elf.var_offset(".bss", &format!("{LOST_PREFIX}{map}"))?;
                Some((map.to_string(), off))
            })
            .collect();
        let inode_filter = elf.map_key_size(super::loader::MNTNS_FILTER_MAP) == Some(8);
        let lost_sample_maps = tracers
            .iter()
            .map(|t: &Tracer| (t.map.clone(), format!("{}{LOST_SAMPLES_SUFFIX}", t.map)))
            .filter(|(_, counter)| elf.maps.contains(counter))
            .collect();
        let runtime_vars = elf
            .var_names()
            .filter(|v| v.starts_with("gadget_") && !v.starts_with(PARAM_PREFIX))
            .filter_map(|v| {
                let (off, size) = elf.var_offset(".rodata", v)?;
                Some((v.to_string(), off, size))
            })
            .collect();
        let bss_vars = elf
            .var_names()
            .filter_map(|v| Some((v.to_string(), elf.var_offset(".bss", v)?.0)))
            .collect();
        Ok(GadgetSpec {
            metadata,
            tracers,
            recorders,
            params,
            map_iters,
            iters,
            programs: elf.programs,
            maps: elf.maps,
            lost_counters,
            lost_sample_maps,
            inode_filter,
            runtime_vars,
            bss_vars,
        })
    }

    /// The flight recorder, if the gadget is one.
    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorders.first()
    }

    /// Whether the gadget's data comes in arrays (map or BPF iterators) rather than events.
    pub fn is_array_gadget(&self) -> bool {
        !self.map_iters.is_empty() || !self.iters.is_empty()
    }

    pub fn param(&self, key: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.key == key)
    }
}

/// `enum bpf_map_type` (include/uapi/linux/bpf.h).
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
const BPF_MAP_TYPE_PERF_EVENT_ARRAY: u32 = 4;

fn find_tracers(elf: &BpfElf) -> Result<Vec<Tracer>, GadgetError> {
    let mut tracers = Vec::new();
    for var in elf.var_names() {
        let Some(rest) = var.strip_prefix(TRACER_PREFIX) else {
            continue;
        };
        let parts: Vec<&str> = rest.split("___").collect();
        let [name, map, struct_name] = parts[..] else {
            return Err(GadgetError::Tracer {
                tracer: rest.to_string(),
                reason: format!("marker `{var}` is not gadget_tracer_<name>___<map>___<struct>"),
            });
        };
        let id = elf
            .btf
            .struct_by_name(struct_name)
            .ok_or_else(|| GadgetError::Tracer {
                tracer: name.to_string(),
                reason: format!("struct `{struct_name}` is not in the object's BTF"),
            })?;
        if !elf.maps.iter().any(|m| m == map) {
            return Err(GadgetError::Tracer {
                tracer: name.to_string(),
                reason: format!("map `{map}` is not defined"),
            });
        }
        let layout = event_layout(&elf.btf, id, struct_name)?;
        // bpf_ringbuf_reserve() refuses a record whose size plus its 8-byte header, rounded
        // up to 8, exceeds the ring (kernel/bpf/ringbuf.c): every event would be lost.
        let is_ring = elf.map_def(map, "type") == Some(BPF_MAP_TYPE_RINGBUF);
        if let Some(ring) = elf.map_def(map, "max_entries").filter(|_| is_ring) {
            let record = (layout.size as u64 + 8).div_ceil(8) * 8;
            if record > ring as u64 {
                return Err(GadgetError::Tracer {
                    tracer: name.to_string(),
                    reason: format!(
                        "struct `{struct_name}` ({} bytes) does not fit in ring buffer `{map}` \
                         ({ring} bytes): every event would be lost; make the ring larger",
                        layout.size
                    ),
                });
            }
        }
        tracers.push(Tracer {
            name: name.to_string(),
            map: map.to_string(),
            layout,
            perf: elf.map_def(map, "type") == Some(BPF_MAP_TYPE_PERF_EVENT_ARRAY),
        });
    }
    tracers.sort_by(|a, b| a.name.cmp(&b.name));
    tracers.dedup_by(|a, b| a.name == b.name);
    Ok(tracers)
}

/// Splits a `<prefix><name>___<map>___<struct>` marker.
fn split_marker<'a>(var: &'a str, prefix: &str) -> Option<Result<[&'a str; 3], String>> {
    let rest = var.strip_prefix(prefix)?;
    let parts: Vec<&str> = rest.split("___").collect();
    Some(match parts[..] {
        [name, map, st] => Ok([name, map, st]),
        _ => Err(rest.to_string()),
    })
}

fn find_recorders(elf: &BpfElf) -> Result<Vec<Recorder>, GadgetError> {
    let bad = |recorder: &str, reason: String| GadgetError::Recorder {
        recorder: recorder.to_string(),
        reason,
    };
    let mut recorders: Vec<Recorder> = Vec::new();
    for var in elf.var_names() {
        // The header's own globals share the prefix; only markers have three parts.
        let Some(Ok([name, map, struct_name])) = split_marker(var, RECORDER_PREFIX) else {
            continue;
        };
        if recorders.iter().any(|r| r.name == name) {
            continue;
        }
        let id = elf.btf.struct_by_name(struct_name).ok_or_else(|| {
            bad(
                name,
                format!("struct `{struct_name}` is not in the object's BTF"),
            )
        })?;
        for m in std::iter::once(map).chain(recorder_api::ALL_MAPS) {
            if !elf.maps.iter().any(|x| x == m) {
                return Err(bad(
                    name,
                    format!(
                        "map `{m}` is not defined (use GADGET_RECORDER of <gadget/recorder.h>)"
                    ),
                ));
            }
        }
        let layout = event_layout(&elf.btf, id, struct_name)?;
        for (semantic, typedef) in [
            (Semantic::RecordSeq, "gadget_record_seq"),
            (Semantic::MntnsId, "gadget_mntns_id"),
            (Semantic::RecordKind, "gadget_record_kind"),
        ] {
            if !layout.fields.iter().any(|f| f.semantic == semantic) {
                return Err(bad(
                    name,
                    format!("struct `{struct_name}` has no field of type `{typedef}`"),
                ));
            }
        }
        recorders.push(Recorder {
            name: name.to_string(),
            map: map.to_string(),
            layout,
        });
    }
    if recorders.len() > 1 {
        return Err(bad(
            &recorders[1].name,
            format!(
                "a gadget has at most one recorder (`{}` is another)",
                recorders[0].name
            ),
        ));
    }
    Ok(recorders)
}

/// The flat list of fields of an event struct; nested structs become `outer.inner`.
pub fn event_layout(btf: &Btf, id: TypeId, struct_name: &str) -> Result<EventLayout, GadgetError> {
    let size = btf.size_of(id).unwrap_or(0);
    // The decoder keeps a buffer of this size: an object must not make it gigabytes.
    if size > MAX_EVENT_SIZE {
        return Err(GadgetError::Btf(format!(
            "event struct `{struct_name}` is {size} bytes; ig decodes events of at most {MAX_EVENT_SIZE} bytes"
        )));
    }
    let mut fields = Vec::new();
    collect_fields(btf, id, "", 0, &mut fields, 0)?;
    // Link each string list to its `<name>_count` sibling.
    for i in 0..fields.len() {
        if let FieldKind::StrList { len, .. } = fields[i].kind {
            let want = format!("{}_count", fields[i].name);
            let count = fields.iter().position(|f| f.name == want);
            fields[i].kind = FieldKind::StrList { len, count };
        }
    }
    Ok(EventLayout {
        struct_name: struct_name.to_string(),
        size,
        fields,
    })
}

fn collect_fields(
    btf: &Btf,
    id: TypeId,
    prefix: &str,
    base: u32,
    out: &mut Vec<RawField>,
    depth: u32,
) -> Result<(), GadgetError> {
    if depth > 8 {
        return Err(GadgetError::Btf("event struct nests too deeply".into()));
    }
    let resolved = btf.resolve(id);
    let members = match btf.get(resolved).map(|t| &t.kind) {
        Some(Kind::Struct { members, .. }) | Some(Kind::Union { members, .. }) => members,
        _ => return Err(GadgetError::Btf(format!("type {id} is not a struct"))),
    };
    for m in members {
        if m.name.starts_with("__") || m.bitfield_size != 0 {
            continue;
        }
        let name = if prefix.is_empty() {
            m.name.clone()
        } else {
            format!("{prefix}.{}", m.name)
        };
        let offset = base
            .checked_add(m.bit_offset / 8)
            .ok_or_else(|| GadgetError::Btf(format!("field `{name}` lies past 4 GiB")))?;
        let typedefs = btf.typedef_chain(m.ty);
        let concrete = btf.resolve(m.ty);
        // An array's meaning is its element's (`gadget_syscall_arg args[6]`).
        let semantic = match btf.get(concrete).map(|t| &t.kind) {
            Some(Kind::Array { elem, .. }) if typedefs.is_empty() => {
                semantic_of(&btf.typedef_chain(*elem))
            }
            _ => semantic_of(&typedefs),
        };
        let kind = match btf.get(concrete).map(|t| &t.kind) {
            Some(Kind::Int {
                size,
                signed,
                is_bool,
                ..
            }) => {
                if *is_bool {
                    FieldKind::Bool
                } else {
                    FieldKind::Int {
                        size: *size,
                        signed: *signed,
                    }
                }
            }
            Some(Kind::Enum {
                size,
                signed,
                values,
            }) => FieldKind::Enum {
                size: *size,
                signed: *signed,
                values: values.clone(),
            },
            Some(Kind::Ptr(_)) => FieldKind::Int {
                size: 8,
                signed: false,
            },
            Some(Kind::Array { elem, len }) => {
                let elem_typedefs = btf.typedef_chain(*elem);
                let elem_concrete = btf.resolve(*elem);
                let is_char = matches!(
                    btf.get(elem_concrete).map(|t| &t.kind),
                    Some(Kind::Int { size: 1, .. })
                );
                let elem_size = btf.size_of(*elem).unwrap_or(1);
                if elem_typedefs.contains(&"gadget_strlist") {
                    FieldKind::StrList {
                        len: *len,
                        count: None,
                    }
                } else if is_char
                    && (btf.get(elem_concrete).is_some_and(|t| t.name == "char")
                        || !elem_typedefs.is_empty())
                {
                    FieldKind::Str { len: *len }
                } else {
                    FieldKind::Bytes {
                        len: len.checked_mul(elem_size).ok_or_else(|| {
                            GadgetError::Btf(format!("array field `{name}` is larger than 4 GiB"))
                        })?,
                    }
                }
            }
            Some(Kind::Struct { .. }) | Some(Kind::Union { .. }) => {
                collect_fields(btf, concrete, &name, offset, out, depth + 1)?;
                continue;
            }
            _ => continue,
        };
        out.push(RawField {
            name,
            offset,
            kind,
            semantic,
        });
    }
    Ok(())
}

fn semantic_of(typedefs: &[&str]) -> Semantic {
    for t in typedefs {
        let s = match *t {
            "gadget_mntns_id" => Semantic::MntnsId,
            "gadget_mntns_nsid" => Semantic::MntnsNsid,
            "gadget_timestamp" => Semantic::Timestamp,
            "gadget_uid" => Semantic::Uid,
            "gadget_gid" => Semantic::Gid,
            "gadget_errno" => Semantic::Errno,
            "gadget_syscall" => Semantic::Syscall,
            "gadget_pid" => Semantic::Pid,
            "gadget_tid" => Semantic::Tid,
            "gadget_comm" => Semantic::Comm,
            "gadget_cpu" => Semantic::Cpu,
            "gadget_signal" => Semantic::Signal,
            "gadget_file_flags" => Semantic::FileFlags,
            "gadget_file_mode" => Semantic::FileMode,
            "gadget_record_seq" => Semantic::RecordSeq,
            "gadget_record_kind" => Semantic::RecordKind,
            "gadget_syscall_arg" => Semantic::SyscallArgs,
            "gadget_syscall_ret" => Semantic::SyscallRet,
            "gadget_capture_arg" => Semantic::CaptureArg,
            "gadget_capture_len" => Semantic::CaptureLen,
            "gadget_capture_flags" => Semantic::CaptureFlags,
            "gadget_capture" => Semantic::Capture,
            "gadget_exec_key" => Semantic::ExecKey,
            _ => continue,
        };
        return s;
    }
    Semantic::Plain
}

fn find_params(elf: &BpfElf, metadata: &Metadata) -> Result<Vec<ParamSpec>, GadgetError> {
    let declared = metadata.params()?;
    let marked: Vec<String> = elf
        .var_names()
        .filter_map(|v| v.strip_prefix(PARAM_PREFIX))
        .map(str::to_string)
        .collect();
    for d in &declared {
        if !marked.contains(&d.var) {
            return Err(GadgetError::UnknownParam(d.var.clone()));
        }
    }
    let mut params = Vec::new();
    for var in &marked {
        let (offset, size) = elf.var_offset(".rodata", var).ok_or_else(|| {
            GadgetError::Program(format!(
                "parameter `{var}` must be a `const volatile` global (in .rodata)"
            ))
        })?;
        let ty = param_type(elf, var)?;
        let bytes = elf
            .rodata
            .get(offset as usize..offset as usize + size as usize)
            .ok_or_else(|| GadgetError::Elf(format!("parameter `{var}` lies outside .rodata")))?;
        let compiled = render_param(ty, bytes);
        let meta = declared.iter().find(|d| &d.var == var);
        params.push(ParamSpec {
            var: var.clone(),
            key: meta
                .map(|m| m.key.clone())
                .unwrap_or_else(|| var.replace('_', "-")),
            description: meta.map(|m| m.description.clone()).unwrap_or_default(),
            default: meta
                .and_then(|m| m.default_value.clone())
                .unwrap_or(compiled),
            ty,
            offset,
            size,
        });
    }
    super::param_keys::check_keys(params.iter().map(|p| p.key.as_str()))?;
    // A gadget.yaml default is checked here, at build and at load, not blamed later on a flag
    // the user never passed.
    for p in &params {
        let declared_default = declared
            .iter()
            .any(|d| d.var == p.var && d.default_value.is_some());
        if declared_default {
            if let Err(GadgetError::ParamValue { value, reason, .. }) = encode_param(p, &p.default)
            {
                return Err(GadgetError::ParamDefault {
                    key: p.key.clone(),
                    value,
                    reason,
                });
            }
        }
    }
    Ok(params)
}

fn param_type(elf: &BpfElf, var: &str) -> Result<ParamType, GadgetError> {
    let btf = &elf.btf;
    let ty = btf
        .types()
        .find_map(|(_, t)| match t.kind {
            Kind::Var { ty } if t.name == var => Some(ty),
            _ => None,
        })
        .ok_or_else(|| GadgetError::UnknownParam(var.to_string()))?;
    // Only the sizes C gives its integers: the value is written into that many bytes.
    let sized = |size: u32| matches!(size, 1 | 2 | 4 | 8);
    match btf.get(btf.resolve(ty)).map(|t| &t.kind) {
        Some(Kind::Int {
            is_bool: true,
            size,
            ..
        }) if sized(*size) => Ok(ParamType::Bool),
        Some(Kind::Int { size, signed, .. } | Kind::Enum { size, signed, .. }) if sized(*size) => {
            Ok(ParamType::Int {
                size: *size,
                signed: *signed,
            })
        }
        Some(Kind::Array { elem, len })
            if *len > 1
                && matches!(
                    btf.get(btf.resolve(*elem)).map(|t| &t.kind),
                    Some(Kind::Int { size: 1, .. })
                ) =>
        {
            Ok(ParamType::Str { len: *len })
        }
        _ => Err(GadgetError::Program(format!(
            "parameter `{var}` has a type ig cannot set (use a bool, an integer of 1, 2, 4 or 8 bytes, or a char array)"
        ))),
    }
}

fn render_param(ty: ParamType, bytes: &[u8]) -> String {
    let mut raw = [0u8; 8];
    let n = bytes.len().min(8);
    raw[..n].copy_from_slice(&bytes[..n]);
    let v = u64::from_le_bytes(raw);
    match ty {
        ParamType::Str { .. } => {
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            String::from_utf8_lossy(&bytes[..end]).into_owned()
        }
        ParamType::Bool => (v != 0).to_string(),
        ParamType::Int { size, signed: true } => {
            let shift = 64 - 8 * size.min(8);
            (((v << shift) as i64) >> shift).to_string()
        }
        ParamType::Int { .. } => v.to_string(),
    }
}

/// Encodes a user-given value for a parameter; empty means "keep the compiled default".
pub fn encode_param(p: &ParamSpec, value: &str) -> Result<Option<Vec<u8>>, GadgetError> {
    // A string is taken as given (a comm may hold spaces); numbers and booleans are trimmed.
    let value = match p.ty {
        ParamType::Str { .. } => value,
        _ => value.trim(),
    };
    if value.is_empty() {
        return Ok(None);
    }
    let bad = |reason: &str| GadgetError::ParamValue {
        flag: p.key.clone(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let bytes = match p.ty {
        ParamType::Bool => match value {
            "true" | "1" | "yes" => vec![1],
            "false" | "0" | "no" => vec![0],
            _ => return Err(bad("expected true or false")),
        },
        ParamType::Int { size, .. } if !matches!(size, 1 | 2 | 4 | 8) => {
            return Err(bad("the parameter is not 1, 2, 4 or 8 bytes wide"))
        }
        ParamType::Int { size, signed } => {
            let bits = 8 * size;
            let v: i128 = parse_int(value).ok_or_else(|| bad("expected an integer"))?;
            let (min, max) = if signed {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            } else {
                (0, (1i128 << bits) - 1)
            };
            if v < min || v > max {
                return Err(bad(&format!("out of range {min}..={max}")));
            }
            (v as u64).to_le_bytes()[..size as usize].to_vec()
        }
        ParamType::Str { len } => {
            let max = len as usize - 1;
            if value.len() > max {
                return Err(bad(&format!("longer than {max} bytes")));
            }
            if value.contains('\0') {
                return Err(bad("holds a NUL byte"));
            }
            let mut bytes = value.as_bytes().to_vec();
            bytes.resize(len as usize, 0);
            bytes
        }
    };
    Ok(Some(bytes))
}

fn parse_int(s: &str) -> Option<i128> {
    if let Some(hex) = s.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(ty: ParamType) -> ParamSpec {
        ParamSpec {
            var: "v".into(),
            key: "v".into(),
            description: String::new(),
            default: String::new(),
            ty,
            offset: 0,
            size: match ty {
                ParamType::Bool => 1,
                ParamType::Int { size, .. } => size,
                ParamType::Str { len } => len,
            },
        }
    }

    fn layout_err(types: &[u32]) -> String {
        let btf = Btf::parse(&crate::gadget::btf::tests::blob_of(types)).expect("parse");
        event_layout(&btf, 2, "ev")
            .expect_err("refused")
            .to_string()
    }

    /// Found by the fuzz targets and property tests (issue 17): sizes and offsets an object
    /// sets overflowed (a panic), or made the decoder allocate gigabytes.
    #[test]
    fn hostile_event_structs_are_refused() {
        #[rustfmt::skip]
        let huge_array = [
            0, 1 << 24, 4, 32,                     // 1: int
            0, (4 << 24) | 1, 4, 0, 3, 0,          // 2: struct ev { int[u32::MAX] a @0 }
            0, 3 << 24, 0, 1, 1, u32::MAX,         // 3: int[u32::MAX]
        ];
        assert_eq!(
            layout_err(&huge_array),
            "invalid BTF: array field `` is larger than 4 GiB"
        );
        #[rustfmt::skip]
        let nested_past_4g = [
            0, 1 << 24, 4, 32,                     // 1: int
            0, (4 << 24) | 2, 4, 0, 1, 0, 0, 2, u32::MAX, // 2: struct ev { int x; ev s @ 512 MiB }
        ];
        assert!(layout_err(&nested_past_4g).contains("lies past 4 GiB"));
        #[rustfmt::skip]
        let huge_struct = [
            0, 1 << 24, 4, 32,                     // 1: int
            0, (4 << 24) | 1, u32::MAX, 0, 1, 0,   // 2: struct ev (4 GiB) { int x }
        ];
        assert_eq!(
            layout_err(&huge_struct),
            "invalid BTF: event struct `ev` is 4294967295 bytes; ig decodes events of at most 16777216 bytes"
        );
    }

    #[test]
    fn params_of_odd_sizes_are_refused_not_panicked_on() {
        for size in [0, 3, 16] {
            let p = param(ParamType::Int { size, signed: true });
            let err = encode_param(&p, "1").expect_err("refused").to_string();
            assert!(err.contains("not 1, 2, 4 or 8 bytes wide"), "{err}");
        }
    }

    #[test]
    fn encodes_and_renders_string_params() {
        let comm = param(ParamType::Str { len: 16 });
        let mut want = b"cat".to_vec();
        want.resize(16, 0);
        assert_eq!(encode_param(&comm, "cat").unwrap(), Some(want.clone()));
        assert_eq!(render_param(comm.ty, &want), "cat");
        assert_eq!(
            encode_param(&comm, " a b ")
                .unwrap()
                .map(|b| b[..5].to_vec()),
            Some(b" a b ".to_vec())
        );
        assert!(encode_param(&comm, &"x".repeat(15)).is_ok());
        assert!(encode_param(&comm, &"x".repeat(16)).is_err());
        assert!(encode_param(&comm, "a\0b").is_err());
        assert_eq!(encode_param(&comm, "").unwrap(), None);
    }

    #[test]
    fn encodes_params() {
        let u32p = param(ParamType::Int {
            size: 4,
            signed: false,
        });
        assert_eq!(
            encode_param(&u32p, "12345").unwrap(),
            Some(12345u32.to_le_bytes().to_vec())
        );
        assert_eq!(encode_param(&u32p, "").unwrap(), None);
        assert!(encode_param(&u32p, "-1").is_err());
        assert!(encode_param(&u32p, "4294967296").is_err());
        assert!(encode_param(&u32p, "abc").is_err());
        let b = param(ParamType::Bool);
        assert_eq!(encode_param(&b, "false").unwrap(), Some(vec![0]));
        assert!(encode_param(&b, "maybe").is_err());
        let i16p = param(ParamType::Int {
            size: 2,
            signed: true,
        });
        assert_eq!(
            encode_param(&i16p, "-2").unwrap(),
            Some((-2i16).to_le_bytes().to_vec())
        );
    }

    #[test]
    fn renders_compiled_defaults() {
        assert_eq!(render_param(ParamType::Bool, &[1]), "true");
        assert_eq!(
            render_param(
                ParamType::Int {
                    size: 4,
                    signed: false
                },
                &[255, 255, 255, 255]
            ),
            "4294967295"
        );
        assert_eq!(
            render_param(
                ParamType::Int {
                    size: 4,
                    signed: true
                },
                &[255, 255, 255, 255]
            ),
            "-1"
        );
    }
}
