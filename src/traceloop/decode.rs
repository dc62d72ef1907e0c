//! Records → syscall events: enter and exit merged, arguments typed for display.

use std::collections::HashMap;

use super::flags;
use super::format::{Param, SyscallFormats};
use super::record::{Captured, Record, RecordKind};
use super::syscalls::Arch;

/// Syscalls whose buffer the kernel fills (known of the syscalls, not of a gadget): name →
/// argument index. Until its exit is seen such a buffer shows as `...`; an exit that captured no
/// bytes for it (an error, or a recorder that does not capture it) shows its pointer.
const EXIT_BUFFERS: &[(&str, usize)] = &[
    ("read", 1),
    ("pread64", 1),
    ("recvfrom", 1),
    ("readlink", 1),
    ("readlinkat", 2),
    ("getcwd", 0),
];

/// The syscall number of an exit after `rt_sigreturn` (`orig_ax` = -1).
const NO_SYSCALL: u32 = u32::MAX;

/// Syscalls returning an address, shown in hex.
const POINTER_RETURNS: &[&str] = &["mmap", "mremap", "brk", "shmat"];

/// One argument's value, typed for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Int(i64),
    UInt(u64),
    /// A pointer without captured data.
    Pointer(u64),
    /// A mode (`umode_t`), shown in octal.
    Mode(u64),
    /// Decoded flags, e.g. `O_WRONLY|O_CREAT`.
    Flags(String),
    /// Captured bytes (a path, a buffer).
    Bytes {
        bytes: Vec<u8>,
        truncated: bool,
    },
    /// A buffer the kernel fills, whose exit was not recorded.
    Pending,
}

/// Whether the event saw the syscall's enter, exit, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    Complete,
    /// Enter recorded, exit missing (still running, overwritten or never returned).
    EnterOnly,
    /// Exit recorded, enter missing (overwritten, or a child returning from clone).
    ExitOnly,
}

/// One syscall as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallEvent {
    /// Sequence number of the first record of this event.
    pub seq: u64,
    /// Boot ns of the enter (or of the exit for exit-only events).
    pub timestamp: u64,
    pub exit_timestamp: Option<u64>,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub comm: Vec<u8>,
    pub mntns_id: u64,
    pub nr: u32,
    pub name: String,
    /// Empty for exit-only events.
    pub params: Vec<(String, ParamValue)>,
    pub ret: Option<i64>,
    /// The return value is an address (mmap, brk).
    pub ret_is_pointer: bool,
    pub state: EventState,
}

/// Decodes records of one architecture with known syscall formats.
#[derive(Debug, Clone)]
pub struct Decoder {
    arch: Arch,
    formats: SyscallFormats,
}

impl Decoder {
    pub fn new(arch: Arch, formats: SyscallFormats) -> Decoder {
        Decoder { arch, formats }
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Decodes records sorted by `seq` (see [`super::record::select_window`]) into events in
    /// enter order; an exit is merged into the latest unfinished enter of the same tid and
    /// syscall; a complete record (an enter its exit completed in place) is an event of its own.
    pub fn decode(&self, records: &[Record]) -> Vec<SyscallEvent> {
        let mut events: Vec<SyscallEvent> = Vec::new();
        let mut raw_args: Vec<[u64; 6]> = Vec::new();
        // tid → index of its unfinished enter
        let mut pending: HashMap<u32, usize> = HashMap::new();
        // tid → index of its latest enter, finished or not (its continuations follow it)
        let mut latest: HashMap<u32, usize> = HashMap::new();
        for r in records {
            match r.kind {
                RecordKind::Enter | RecordKind::Complete => {
                    let name = self.arch.display_name(r.nr);
                    let params = self.enter_params(&name, r);
                    if r.kind == RecordKind::Enter {
                        pending.insert(r.tid, events.len());
                    } else {
                        // A complete record of this tid means it left any syscall before.
                        pending.remove(&r.tid);
                    }
                    latest.insert(r.tid, events.len());
                    raw_args.push(r.args);
                    events.push(SyscallEvent {
                        seq: r.seq,
                        timestamp: r.timestamp,
                        exit_timestamp: None,
                        cpu: r.cpu,
                        pid: r.pid,
                        tid: r.tid,
                        comm: r.comm.clone(),
                        mntns_id: r.mntns_id,
                        nr: r.nr,
                        ret_is_pointer: POINTER_RETURNS.contains(&name.as_str()),
                        name,
                        params,
                        ret: None,
                        state: EventState::EnterOnly,
                    });
                    if r.kind == RecordKind::Complete {
                        let i = events.len() - 1;
                        let ev = &mut events[i];
                        ev.ret = Some(r.ret());
                        ev.state = EventState::Complete;
                        self.finish_exit_params(ev, &raw_args[i], r.data.as_ref());
                    }
                }
                RecordKind::EnterData => {
                    let Some(&i) = latest.get(&r.tid) else {
                        continue;
                    };
                    if events[i].nr == r.nr {
                        if let Some(d) = &r.data {
                            set_captured(&mut events[i].params, d);
                        }
                    }
                }
                RecordKind::Exit => {
                    // rt_sigreturn restores the registers, so its exit reports syscall
                    // -1 (and the interrupted syscall's return value): take the pending one.
                    let open = pending
                        .get(&r.tid)
                        .copied()
                        .filter(|&i| events[i].nr == r.nr || r.nr == NO_SYSCALL);
                    match open {
                        Some(i) => {
                            pending.remove(&r.tid);
                            let ev = &mut events[i];
                            ev.ret = Some(r.ret());
                            ev.exit_timestamp = Some(r.timestamp);
                            ev.state = EventState::Complete;
                            self.finish_exit_params(ev, &raw_args[i], r.data.as_ref());
                        }
                        None => {
                            let name = if r.nr == NO_SYSCALL {
                                "rt_sigreturn".to_string()
                            } else {
                                self.arch.display_name(r.nr)
                            };
                            raw_args.push([0; 6]);
                            events.push(SyscallEvent {
                                seq: r.seq,
                                timestamp: r.timestamp,
                                exit_timestamp: Some(r.timestamp),
                                cpu: r.cpu,
                                pid: r.pid,
                                tid: r.tid,
                                comm: r.comm.clone(),
                                mntns_id: r.mntns_id,
                                nr: r.nr,
                                ret_is_pointer: POINTER_RETURNS.contains(&name.as_str()),
                                name,
                                params: Vec::new(),
                                ret: Some(r.ret()),
                                state: EventState::ExitOnly,
                            });
                        }
                    }
                }
            }
        }
        events
    }

    fn params_of(&self, name: &str) -> Vec<Param> {
        match self.formats.params(name) {
            Some(p) => p.to_vec(),
            None => (0..6)
                .map(|i| Param {
                    name: format!("arg{i}"),
                    c_type: "unsigned long".to_string(),
                })
                .collect(),
        }
    }

    fn enter_params(&self, name: &str, r: &Record) -> Vec<(String, ParamValue)> {
        let exit_buf = exit_buffer_arg(name);
        self.params_of(name)
            .iter()
            .enumerate()
            .take(6)
            .map(|(i, p)| {
                let raw = r.args[i];
                let value = match &r.data {
                    Some(d) if usize::from(d.arg) == i && !d.fault => ParamValue::Bytes {
                        bytes: d.bytes.clone(),
                        truncated: d.truncated,
                    },
                    _ if exit_buf == Some(i) => ParamValue::Pending,
                    _ => self.value(name, p, raw),
                };
                (p.name.clone(), value)
            })
            .collect()
    }

    fn finish_exit_params(&self, ev: &mut SyscallEvent, raw: &[u64; 6], data: Option<&Captured>) {
        if let Some(d) = data.filter(|d| !d.fault) {
            set_captured(&mut ev.params, d);
        }
        // Buffers the kernel did not fill (error, EOF): the pointer.
        for (i, (_, v)) in ev.params.iter_mut().enumerate() {
            if *v == ParamValue::Pending {
                *v = ParamValue::Pointer(raw[i]);
            }
        }
    }

    fn value(&self, syscall: &str, p: &Param, raw: u64) -> ParamValue {
        let ty = p.c_type.strip_prefix("const ").unwrap_or(&p.c_type).trim();
        if p.is_pointer() {
            return ParamValue::Pointer(raw);
        }
        if p.name == "flags" && matches!(syscall, "open" | "openat") {
            return ParamValue::Flags(flags::open_flags(self.arch, raw));
        }
        match ty {
            "umode_t" => ParamValue::Mode(raw & 0xffff),
            "int" | "pid_t" | "key_t" | "clockid_t" | "timer_t" | "mqd_t" | "key_serial_t"
            | "__s32" | "s32" => ParamValue::Int(i64::from(raw as u32 as i32)),
            "long" | "loff_t" | "off_t" | "ssize_t" | "__s64" | "s64" => {
                ParamValue::Int(raw as i64)
            }
            "unsigned int" | "unsigned" | "u32" | "__u32" | "uid_t" | "gid_t" | "qid_t"
            | "rwf_t" => ParamValue::UInt(raw & 0xffff_ffff),
            _ => ParamValue::UInt(raw),
        }
    }
}

fn exit_buffer_arg(name: &str) -> Option<usize> {
    EXIT_BUFFERS
        .iter()
        .find(|&&(n, _)| n == name)
        .map(|&(_, i)| i)
}

fn set_captured(params: &mut [(String, ParamValue)], d: &Captured) {
    if let Some((_, v)) = params.get_mut(usize::from(d.arg)) {
        *v = ParamValue::Bytes {
            bytes: d.bytes.clone(),
            truncated: d.truncated,
        };
    }
}
