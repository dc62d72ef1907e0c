//! A flight recorder's records, decoded by the meaning of their fields, and choosing a
//! container's window.
//!
//! The runtime knows no record struct: a gadget names its own with `GADGET_RECORDER`
//! (`bpf/gadget/recorder.h`) and gives each field its meaning with a typedef of
//! `bpf/gadget/types.h`. [`RecordLayout::from_layout`] finds the fields by those typedefs in the
//! struct's BTF layout; any order, any subset of the optional ones:
//!
//! | typedef | | |
//! |---|---|---|
//! | `gadget_record_seq` | required | per-container sequence number |
//! | `gadget_record_kind` | required | 0 empty slot, 1 enter, 2 exit, 3 more data of an enter, 4 an enter its exit completed in place |
//! | `gadget_mntns_id` | required | the mount namespace (a slot's previous owner is dropped) |
//! | `gadget_syscall` | required | syscall number |
//! | `gadget_timestamp` | | boot ns |
//! | `gadget_syscall_arg[N]` | | N ≤ 6 arguments; on an exit `[0]` is the return value... |
//! | `gadget_syscall_ret` | | ...unless the struct has this field (required for kind 4) |
//! | `gadget_pid`, `gadget_tid`, `gadget_cpu`, `gadget_comm[]` | | (tid: pid when absent) |
//! | `gadget_capture_arg`, `gadget_capture_len`, `gadget_capture_flags`, `gadget_capture[]` | | bytes of one argument (a path, a buffer); arg 0xff: none; flags 1 cut, 2 fault |
//!
//! traceloop's `struct traceloop_record` (256 bytes) has them all, in the order of this table.

use super::TraceloopError;
use crate::gadget::spec::{EventLayout, FieldKind, Semantic};

/// `gadget_capture_arg` value meaning "no captured data".
pub const NO_DATA_ARG: u8 = 0xff;
/// `gadget_capture_flags` bit: more bytes existed than were captured.
pub const DATA_TRUNCATED: u8 = 1;
/// `gadget_capture_flags` bit: reading user memory failed.
pub const DATA_FAULT: u8 = 2;
/// Arguments a syscall has at most.
pub const MAX_ARGS: usize = 6;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Syscall entry with its arguments.
    Enter,
    /// Syscall exit with its return value.
    Exit,
    /// More captured data of the preceding [`RecordKind::Enter`] on the same tid.
    EnterData,
    /// An enter whose exit completed it in place: arguments, captured data (of the enter or of
    /// the exit) and the return value (`gadget_syscall_ret`) in one record.
    Complete,
}

/// Bytes captured from user memory for one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Argument index (0..6).
    pub arg: u8,
    pub bytes: Vec<u8>,
    /// The user buffer/string was longer than the capture capacity.
    pub truncated: bool,
    /// The read from user memory failed (bytes is empty).
    pub fault: bool,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub timestamp: u64,
    pub mntns_id: u64,
    pub args: [u64; MAX_ARGS],
    /// An exit's (or a complete record's) return value from a `gadget_syscall_ret` field; an
    /// exit without one has it in `args[0]`.
    pub ret: Option<i64>,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub nr: u32,
    pub comm: Vec<u8>,
    pub kind: RecordKind,
    pub data: Option<Captured>,
}

impl Record {
    /// The return value of an exit or complete record.
    pub fn ret(&self) -> i64 {
        self.ret.unwrap_or(self.args[0] as i64)
    }
}

/// An integer field: offset and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Int {
    offset: usize,
    size: usize,
    signed: bool,
}

impl Int {
    fn read(self, b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        let n = self.size.min(8);
        a[..n].copy_from_slice(&b[self.offset..self.offset + n]);
        let v = u64::from_le_bytes(a);
        if self.signed && n < 8 {
            let shift = 64 - 8 * n as u32;
            (((v << shift) as i64) >> shift) as u64
        } else {
            v
        }
    }

    #[cfg(test)]
    fn write(self, b: &mut [u8], v: u64) {
        let n = self.size.min(8);
        b[self.offset..self.offset + n].copy_from_slice(&v.to_le_bytes()[..n]);
    }
}

/// A byte array field: offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Array {
    offset: usize,
    len: usize,
}

/// Where the fields a syscall decoder reads are in one gadget's record struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLayout {
    pub struct_name: String,
    /// Bytes per record (the struct's size).
    pub size: usize,
    seq: Int,
    kind: Int,
    mntns: Int,
    nr: Int,
    timestamp: Option<Int>,
    /// Offset and count of the `u64` arguments.
    args: Option<(usize, usize)>,
    ret: Option<Int>,
    pid: Option<Int>,
    tid: Option<Int>,
    cpu: Option<Int>,
    comm: Option<Array>,
    capture_arg: Option<Int>,
    capture_len: Option<Int>,
    capture_flags: Option<Int>,
    capture: Option<Array>,
}

impl RecordLayout {
    /// Finds the fields by their typedefs (see the module's table).
    pub fn from_layout(layout: &EventLayout) -> Result<RecordLayout, TraceloopError> {
        let name = &layout.struct_name;
        let size = layout.size as usize;
        let bad = |m: String| TraceloopError::Layout(format!("struct `{name}`: {m}"));
        let field = |s: Semantic| layout.fields.iter().find(|f| f.semantic == s);
        let int = |s: Semantic, typedef: &str| -> Result<Option<Int>, TraceloopError> {
            let Some(f) = field(s) else {
                return Ok(None);
            };
            match f.kind {
                FieldKind::Int { size: n, signed } if (1..=8).contains(&n) => Ok(Some(Int {
                    offset: f.offset as usize,
                    size: n as usize,
                    signed,
                })),
                _ => Err(bad(format!(
                    "field `{}` ({typedef}) is not an integer",
                    f.name
                ))),
            }
        };
        let array = |s: Semantic, typedef: &str| -> Result<Option<Array>, TraceloopError> {
            let Some(f) = field(s) else {
                return Ok(None);
            };
            match f.kind {
                FieldKind::Str { len } | FieldKind::Bytes { len } => Ok(Some(Array {
                    offset: f.offset as usize,
                    len: len as usize,
                })),
                _ => Err(bad(format!(
                    "field `{}` ({typedef}) is not an array",
                    f.name
                ))),
            }
        };
        let required = |v: Option<Int>, typedef: &str| {
            v.ok_or_else(|| bad(format!("no field of type `{typedef}`")))
        };
        let args = match array(Semantic::SyscallArgs, "gadget_syscall_arg")? {
            None => None,
            Some(a) if a.len % 8 == 0 && a.len / 8 <= MAX_ARGS && a.len > 0 => {
                Some((a.offset, a.len / 8))
            }
            Some(_) => {
                return Err(bad(format!(
                    "`gadget_syscall_arg` must be an array of 1 to {MAX_ARGS}"
                )))
            }
        };
        let out = RecordLayout {
            struct_name: name.clone(),
            size,
            seq: required(
                int(Semantic::RecordSeq, "gadget_record_seq")?,
                "gadget_record_seq",
            )?,
            kind: required(
                int(Semantic::RecordKind, "gadget_record_kind")?,
                "gadget_record_kind",
            )?,
            mntns: required(
                int(Semantic::MntnsId, "gadget_mntns_id")?,
                "gadget_mntns_id",
            )?,
            nr: required(int(Semantic::Syscall, "gadget_syscall")?, "gadget_syscall")?,
            timestamp: int(Semantic::Timestamp, "gadget_timestamp")?,
            args,
            ret: int(Semantic::SyscallRet, "gadget_syscall_ret")?,
            pid: int(Semantic::Pid, "gadget_pid")?,
            tid: int(Semantic::Tid, "gadget_tid")?,
            cpu: int(Semantic::Cpu, "gadget_cpu")?,
            comm: array(Semantic::Comm, "gadget_comm")?,
            capture_arg: int(Semantic::CaptureArg, "gadget_capture_arg")?,
            capture_len: int(Semantic::CaptureLen, "gadget_capture_len")?,
            capture_flags: int(Semantic::CaptureFlags, "gadget_capture_flags")?,
            capture: array(Semantic::Capture, "gadget_capture")?,
        };
        // The BTF said so, but a field past the struct's end would make parse() slice out of
        // bounds: refuse such a layout here once.
        let ends = [out.seq, out.kind, out.mntns, out.nr]
            .into_iter()
            .chain(
                [
                    out.timestamp,
                    out.ret,
                    out.pid,
                    out.tid,
                    out.cpu,
                    out.capture_arg,
                    out.capture_len,
                    out.capture_flags,
                ]
                .into_iter()
                .flatten(),
            )
            .map(|i| i.offset + i.size)
            .chain(
                [out.comm, out.capture]
                    .into_iter()
                    .flatten()
                    .map(|a| a.offset + a.len),
            )
            .chain(out.args.map(|(o, n)| o + 8 * n));
        if size == 0 || ends.into_iter().any(|end| end > size) {
            return Err(bad(format!("a field lies outside its {size} bytes")));
        }
        Ok(out)
    }

    /// Bytes of user memory one record can capture.
    pub fn capture_len(&self) -> usize {
        self.capture.map_or(0, |c| c.len)
    }

    /// Parses one record; `Ok(None)` for an empty (never written) slot.
    pub fn parse(&self, buf: &[u8]) -> Result<Option<Record>, TraceloopError> {
        if buf.len() != self.size {
            return Err(TraceloopError::Record(format!(
                "record is {} bytes, expected {}",
                buf.len(),
                self.size
            )));
        }
        let kind = match self.kind.read(buf) {
            0 => return Ok(None),
            1 => RecordKind::Enter,
            2 => RecordKind::Exit,
            3 => RecordKind::EnterData,
            4 if self.ret.is_some() => RecordKind::Complete,
            4 => {
                return Err(TraceloopError::Record(
                    "record kind 4 (complete) in a struct without a gadget_syscall_ret field"
                        .into(),
                ))
            }
            k => return Err(TraceloopError::Record(format!("unknown record kind {k}"))),
        };
        let opt = |f: Option<Int>| f.map_or(0, |f| f.read(buf));
        let mut args = [0u64; MAX_ARGS];
        if let Some((off, n)) = self.args {
            for (i, a) in args.iter_mut().take(n).enumerate() {
                *a = Int {
                    offset: off + 8 * i,
                    size: 8,
                    signed: false,
                }
                .read(buf);
            }
        }
        let comm = self
            .comm
            .map_or(&[][..], |c| &buf[c.offset..c.offset + c.len]);
        let comm_len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        let data = match (self.capture_arg, self.capture) {
            (Some(arg), Some(c)) if arg.read(buf) as u8 != NO_DATA_ARG => {
                let len = (opt(self.capture_len) as usize).min(c.len);
                let flags = opt(self.capture_flags) as u8;
                Some(Captured {
                    arg: arg.read(buf) as u8,
                    bytes: buf[c.offset..c.offset + len].to_vec(),
                    truncated: flags & DATA_TRUNCATED != 0,
                    fault: flags & DATA_FAULT != 0,
                })
            }
            _ => None,
        };
        let pid = opt(self.pid) as u32;
        Ok(Some(Record {
            seq: self.seq.read(buf),
            timestamp: opt(self.timestamp),
            mntns_id: self.mntns.read(buf),
            args,
            ret: match (kind, self.ret) {
                (RecordKind::Exit | RecordKind::Complete, Some(r)) => Some(r.read(buf) as i64),
                _ => None,
            },
            pid,
            tid: self.tid.map_or(pid, |t| t.read(buf) as u32),
            cpu: opt(self.cpu) as u32,
            nr: self.nr.read(buf) as u32,
            comm: comm[..comm_len].to_vec(),
            kind,
            data,
        }))
    }

    /// Serializes a record in this layout (tests and fixtures).
    #[cfg(test)]
    pub fn encode(&self, r: &Record) -> Vec<u8> {
        let mut b = vec![0u8; self.size];
        self.seq.write(&mut b, r.seq);
        self.mntns.write(&mut b, r.mntns_id);
        self.nr.write(&mut b, u64::from(r.nr));
        let set = |f: Option<Int>, b: &mut Vec<u8>, v: u64| {
            if let Some(f) = f {
                f.write(b, v)
            }
        };
        set(self.timestamp, &mut b, r.timestamp);
        set(self.pid, &mut b, u64::from(r.pid));
        set(self.tid, &mut b, u64::from(r.tid));
        set(self.cpu, &mut b, u64::from(r.cpu));
        set(self.ret, &mut b, r.ret.unwrap_or(0) as u64);
        if let Some((off, n)) = self.args {
            for (i, a) in r.args.iter().take(n).enumerate() {
                b[off + 8 * i..off + 8 * i + 8].copy_from_slice(&a.to_le_bytes());
            }
        }
        if let Some(c) = self.comm {
            let n = r.comm.len().min(c.len.saturating_sub(1));
            b[c.offset..c.offset + n].copy_from_slice(&r.comm[..n]);
        }
        self.kind.write(
            &mut b,
            match r.kind {
                RecordKind::Enter => 1,
                RecordKind::Exit => 2,
                RecordKind::EnterData => 3,
                RecordKind::Complete => 4,
            },
        );
        set(self.capture_arg, &mut b, u64::from(NO_DATA_ARG));
        if let (Some(d), Some(c)) = (&r.data, self.capture) {
            let n = d.bytes.len().min(c.len);
            set(self.capture_arg, &mut b, u64::from(d.arg));
            set(self.capture_len, &mut b, n as u64);
            let flags = (u8::from(d.truncated) * DATA_TRUNCATED) | (u8::from(d.fault) * DATA_FAULT);
            set(self.capture_flags, &mut b, u64::from(flags));
            b[c.offset..c.offset + n].copy_from_slice(&d.bytes[..n]);
        }
        b
    }
}

/// Parses a dump of consecutive records (e.g. one container's part of the array), skipping
/// empty slots.
pub fn parse_records(layout: &RecordLayout, buf: &[u8]) -> Result<Vec<Record>, TraceloopError> {
    let size = layout.size;
    if !buf.len().is_multiple_of(size) {
        return Err(TraceloopError::Record(format!(
            "dump of {} bytes is not a multiple of {size}",
            buf.len()
        )));
    }
    let mut out = Vec::new();
    for chunk in buf.chunks_exact(size) {
        if let Some(r) = layout.parse(chunk)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// A container's records in order: those of `mntns_id` whose `seq` is within the last
/// `capacity` sequence numbers before `head` (the value of the slot's head counter) and not
/// before `first_seq` (the head when the namespace got the slot), sorted by `seq`. Stale
/// records of a previous owner of the slot are dropped, also one with the same inode.
pub fn select_window(
    mut records: Vec<Record>,
    mntns_id: u64,
    first_seq: u64,
    head: u64,
    capacity: u64,
) -> Vec<Record> {
    let low = head.saturating_sub(capacity).max(first_seq);
    records.retain(|r| r.mntns_id == mntns_id && r.seq >= low && r.seq < head);
    records.sort_by_key(|r| r.seq);
    records
}

/// The built-in traceloop's record layout, from its object's BTF (tests, fixtures, fuzzing);
/// `None` if the binary's own gadget does not analyze, which its tests would catch.
#[doc(hidden)]
pub fn traceloop_layout() -> Option<RecordLayout> {
    let g = crate::builtin::find("traceloop")?;
    let meta = crate::gadget::Metadata::parse(g.metadata).ok()?;
    // A copy: the embedded bytes are not aligned as the ELF reader needs.
    let object: Vec<u8> = g.objects.first()?.1.into();
    let spec = crate::gadget::GadgetSpec::analyze(&object, meta).ok()?;
    RecordLayout::from_layout(&spec.recorder()?.layout).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, mntns: u64) -> Record {
        Record {
            seq,
            timestamp: 1000 + seq,
            mntns_id: mntns,
            args: [1, 2, 3, 4, 5, u64::MAX],
            ret: None,
            pid: 10,
            tid: 11,
            cpu: 2,
            nr: 1,
            comm: b"bc".to_vec(),
            kind: RecordKind::Enter,
            data: Some(Captured {
                arg: 1,
                bytes: b"42\n".to_vec(),
                truncated: false,
                fault: false,
            }),
        }
    }

    #[test]
    fn traceloop_layout_from_btf() {
        let l = traceloop_layout().expect("traceloop layout");
        assert_eq!(l.size, 256);
        assert_eq!(l.capture_len(), 128);
        assert_eq!((l.seq.offset, l.kind.offset, l.mntns.offset), (0, 112, 16));
        assert_eq!(l.args, Some((24, 6)));
        assert_eq!(
            l.ret,
            Some(Int {
                offset: 72,
                size: 8,
                signed: true
            })
        );
        // The header and 8 bytes of capture share the first two cache lines.
        assert_eq!(l.capture.map(|c| c.offset), Some(120));
    }

    #[test]
    fn roundtrip() {
        let l = traceloop_layout().expect("traceloop layout");
        let r = rec(5, 7);
        let b = l.encode(&r);
        assert_eq!(b.len(), 256);
        assert_eq!(l.parse(&b).expect("parse"), Some(r));
        assert_eq!(l.parse(&[0u8; 256]).expect("empty"), None);
        assert!(l.parse(&[0u8; 3]).is_err());
        // An enter its exit completed in place: the return value is its own field.
        let mut c = rec(6, 7);
        c.kind = RecordKind::Complete;
        c.ret = Some(-2);
        let b = l.encode(&c);
        assert_eq!(b[112], 4);
        let back = l.parse(&b).expect("parse").expect("a record");
        assert_eq!((back.ret(), back.args), (-2, c.args));
        assert_eq!(back, c);
    }

    #[test]
    fn complete_kind_needs_a_ret_field() {
        use crate::gadget::spec::RawField;
        let int = |name: &str, offset: u32, size: u32, semantic: Semantic| RawField {
            name: name.into(),
            offset,
            kind: FieldKind::Int {
                size,
                signed: false,
            },
            semantic,
        };
        let l = RecordLayout::from_layout(&EventLayout {
            struct_name: "r".into(),
            size: 24,
            fields: vec![
                int("seq", 0, 8, Semantic::RecordSeq),
                int("ns", 8, 8, Semantic::MntnsId),
                int("nr", 16, 4, Semantic::Syscall),
                int("kind", 20, 1, Semantic::RecordKind),
            ],
        })
        .expect("layout");
        let mut b = [0u8; 24];
        b[20] = 4;
        let e = l.parse(&b).expect_err("kind 4 without a return value");
        assert!(e.to_string().contains("gadget_syscall_ret"), "{e}");
        b[20] = 2;
        assert!(l.parse(&b).expect("an exit").is_some());
    }

    #[test]
    fn window() {
        let l = traceloop_layout().expect("traceloop layout");
        let mut dump = Vec::new();
        for r in [rec(9, 7), rec(3, 7), rec(8, 7), rec(9, 8), rec(10, 7)] {
            dump.extend(l.encode(&r));
        }
        dump.extend([0u8; 256]);
        let all = parse_records(&l, &dump).expect("parse");
        assert_eq!(all.len(), 5);
        let w = select_window(all.clone(), 7, 0, 10, 4);
        assert_eq!(w.iter().map(|r| r.seq).collect::<Vec<_>>(), [8, 9]);
        // a previous owner with the same inode wrote seq 8
        let w = select_window(all, 7, 9, 10, 4);
        assert_eq!(w.iter().map(|r| r.seq).collect::<Vec<_>>(), [9]);
        assert!(parse_records(&l, &dump[1..]).is_err());
    }
}
