//! Text (strace-like) and JSON rendering of syscall events.
//!
//! ```text
//! 00:00.071546191 cpu#1 pid 14276 [cat] openat(dfd=-100, filename="/tmp/file-3240", flags=O_RDONLY, mode=0) = -2 (ENOENT)
//! 00:00.071600000 cpu#1 pid 14276 [cat] read(fd=3, buf=..., count=4096) ...
//! 00:00.071700000 cpu#1 pid 14276 [cat] ... read() = 5
//! ```

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::decode::{EventState, ParamValue, SyscallEvent};
use super::errno;

/// The origin of relative times: the first event shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timebase(pub u64);

impl Timebase {
    /// The earliest timestamp of `events` (0 when empty).
    pub fn of(events: &[SyscallEvent]) -> Timebase {
        Timebase(events.iter().map(|e| e.timestamp).min().unwrap_or(0))
    }

    /// `MM:SS.nnnnnnnnn` since the origin.
    pub fn relative(self, ts: u64) -> String {
        let d = ts.saturating_sub(self.0);
        let secs = d / 1_000_000_000;
        format!("{:02}:{:02}.{:09}", secs / 60, secs % 60, d % 1_000_000_000)
    }
}

/// Escapes untrusted bytes: `\n`, `\t`, `\r`, `\"`, `\\`, other non-printables as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

fn value_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Int(i) => i.to_string(),
        ParamValue::UInt(u) => u.to_string(),
        ParamValue::Pointer(0) => "NULL".to_string(),
        ParamValue::Pointer(p) => format!("{p:#x}"),
        ParamValue::Mode(0) => "0".to_string(),
        ParamValue::Mode(m) => format!("0{m:o}"),
        ParamValue::Flags(f) => f.clone(),
        ParamValue::Bytes { bytes, truncated } => {
            format!(
                "\"{}\"{}",
                escape_bytes(bytes),
                if *truncated { "..." } else { "" }
            )
        }
        ParamValue::Pending => "...".to_string(),
    }
}

/// `= 3`, `= -2 (ENOENT)`, `= 0x7f0000000000`.
fn ret_text(ev: &SyscallEvent, ret: i64) -> String {
    match errno::from_ret(ret) {
        Some(e) => match errno::name(e) {
            Some(name) => format!("{ret} ({name})"),
            None => ret.to_string(),
        },
        None if ev.ret_is_pointer => format!("{:#x}", ret as u64),
        None => ret.to_string(),
    }
}

/// One strace-like line (no trailing newline).
pub fn format_line(ev: &SyscallEvent, base: Timebase) -> String {
    let mut s = format!(
        "{} cpu#{} pid {} [{}] ",
        base.relative(ev.timestamp),
        ev.cpu,
        ev.pid,
        escape_bytes(&ev.comm)
    );
    let params = || {
        ev.params
            .iter()
            .map(|(n, v)| format!("{n}={}", value_text(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (ev.state, ev.ret) {
        (EventState::ExitOnly, Some(ret)) => {
            let _ = write!(s, "... {}() = {}", ev.name, ret_text(ev, ret));
        }
        (EventState::Complete, Some(ret)) => {
            let _ = write!(s, "{}({}) = {}", ev.name, params(), ret_text(ev, ret));
        }
        _ => {
            let _ = write!(s, "{}({}) ...", ev.name, params());
        }
    }
    s
}

fn value_json(v: &ParamValue) -> Value {
    match v {
        ParamValue::Int(i) => json!(i),
        ParamValue::UInt(u) => json!(u),
        ParamValue::Pointer(_) | ParamValue::Mode(_) | ParamValue::Flags(_) => {
            Value::String(value_text(v))
        }
        ParamValue::Bytes { bytes, .. } => Value::String(String::from_utf8_lossy(bytes).into()),
        ParamValue::Pending => Value::Null,
    }
}

/// One JSON object per syscall. `extra` (e.g. the caller's container fields:
/// `{"runtime": {"containerName": "web"}}`) comes first.
///
/// Fields: `timestamp` (boot ns), `time` (relative, as in the text line), `cpu`, `pid`,
/// `tid`, `comm`, `mntns_id`, `syscall`, `params` (`[{name, value}]`, plus `truncated: true`
/// for cut buffers; value: number, string, or null for a buffer never filled), `ret` (number
/// or null), `error` (`ENOENT` or empty), `state` (`complete`, `enter`, `exit`).
pub fn to_json(ev: &SyscallEvent, base: Timebase, extra: &Map<String, Value>) -> Value {
    let mut o = extra.clone();
    let params: Vec<Value> = ev
        .params
        .iter()
        .map(|(n, v)| {
            let mut p = Map::new();
            p.insert("name".into(), Value::String(n.clone()));
            p.insert("value".into(), value_json(v));
            if let ParamValue::Bytes {
                truncated: true, ..
            } = v
            {
                p.insert("truncated".into(), Value::Bool(true));
            }
            Value::Object(p)
        })
        .collect();
    let error = ev
        .ret
        .and_then(errno::from_ret)
        .and_then(errno::name)
        .unwrap_or("");
    o.insert("timestamp".into(), json!(ev.timestamp));
    o.insert("time".into(), json!(base.relative(ev.timestamp)));
    o.insert("cpu".into(), json!(ev.cpu));
    o.insert("pid".into(), json!(ev.pid));
    o.insert("tid".into(), json!(ev.tid));
    o.insert(
        "comm".into(),
        json!(String::from_utf8_lossy(&ev.comm).into_owned()),
    );
    o.insert("mntns_id".into(), json!(ev.mntns_id));
    o.insert("syscall".into(), json!(ev.name));
    o.insert("params".into(), Value::Array(params));
    o.insert("ret".into(), ev.ret.map_or(Value::Null, |r| json!(r)));
    o.insert("error".into(), json!(error));
    let state = match ev.state {
        EventState::Complete => "complete",
        EventState::EnterOnly => "enter",
        EventState::ExitOnly => "exit",
    };
    o.insert("state".into(), json!(state));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::super::decode::Decoder;
    use super::super::format::SyscallFormats;
    use super::super::record::{Captured, Record, RecordKind};
    use super::super::syscalls::Arch;
    use super::*;

    const BASE: u64 = 5_000_000_000;

    fn rec(seq: u64, ts: u64, tid: u32, comm: &str, nr: u32, kind: RecordKind) -> Record {
        Record {
            seq,
            timestamp: BASE + ts,
            mntns_id: 4026532000,
            args: [0; 6],
            ret: None,
            pid: tid,
            tid,
            cpu: 1,
            nr,
            comm: comm.as_bytes().to_vec(),
            kind,
            data: None,
        }
    }

    fn data(arg: u8, bytes: &[u8], truncated: bool) -> Option<Captured> {
        Some(Captured {
            arg,
            bytes: bytes.to_vec(),
            truncated,
            fault: false,
        })
    }

    fn lines(records: &[Record]) -> Vec<String> {
        let d = Decoder::new(Arch::X86_64, SyscallFormats::fallback());
        let events = d.decode(records);
        let base = Timebase::of(&events);
        events.iter().map(|e| format_line(e, base)).collect()
    }

    const OPENAT: u32 = 257;
    const WRITE: u32 = 1;
    const READ: u32 = 0;

    #[test]
    fn openat_enoent() {
        let mut first = rec(0, 0, 14276, "sh", 39, RecordKind::Exit);
        first.args[0] = 14276;
        let mut enter = rec(1, 71_546_191, 14276, "cat", OPENAT, RecordKind::Enter);
        enter.args = [(-100i64) as u64, 0x7ffd_0000_1000, 0, 0, 0, 0];
        enter.data = data(1, b"/tmp/file-3240", false);
        let mut exit = rec(2, 71_550_000, 14276, "cat", OPENAT, RecordKind::Exit);
        exit.args[0] = (-2i64) as u64;
        let l = lines(&[first, enter, exit]);
        assert_eq!(
            l[0],
            "00:00.000000000 cpu#1 pid 14276 [sh] ... getpid() = 14276"
        );
        assert_eq!(
            l[1],
            "00:00.071546191 cpu#1 pid 14276 [cat] openat(dfd=-100, filename=\"/tmp/file-3240\", flags=O_RDONLY, mode=0) = -2 (ENOENT)"
        );
    }

    #[test]
    fn write_42() {
        let mut enter = rec(7, 0, 14465, "bc", WRITE, RecordKind::Enter);
        enter.args = [1, 7415808, 3, 0, 0, 0];
        enter.data = data(1, b"42\n", false);
        let mut exit = rec(8, 10, 14465, "bc", WRITE, RecordKind::Exit);
        exit.args[0] = 3;
        assert_eq!(
            lines(&[enter, exit]),
            ["00:00.000000000 cpu#1 pid 14465 [bc] write(fd=1, buf=\"42\\n\", count=3) = 3"]
        );
    }

    #[test]
    fn merged_read_interleaved_with_other_tid() {
        let mut enter = rec(1, 0, 10, "cat", READ, RecordKind::Enter);
        enter.args = [3, 0x1000, 4096, 0, 0, 0];
        let mut other = rec(2, 5, 11, "sh", WRITE, RecordKind::Enter);
        other.args = [1, 0x2000, 200, 0, 0, 0];
        other.data = data(1, &[b'a'; 128], true);
        let mut exit = rec(3, 1_000_000_007, 10, "cat", READ, RecordKind::Exit);
        exit.args[0] = 5;
        exit.data = data(1, b"hel\x01\t", false);
        let l = lines(&[enter, other, exit]);
        assert_eq!(
            l[0],
            "00:00.000000000 cpu#1 pid 10 [cat] read(fd=3, buf=\"hel\\x01\\t\", count=4096) = 5"
        );
        assert_eq!(
            l[1],
            format!(
                "00:00.000000005 cpu#1 pid 11 [sh] write(fd=1, buf=\"{}\"..., count=200) ...",
                "a".repeat(128)
            )
        );
    }

    #[test]
    fn unmatched_enter_and_exit() {
        let mut enter = rec(1, 0, 10, "cat", READ, RecordKind::Enter);
        enter.args = [3, 0x1000, 4096, 0, 0, 0];
        let mut exit = rec(2, 61_000_000_000, 12, "cat", READ, RecordKind::Exit);
        exit.args[0] = 5;
        assert_eq!(
            lines(&[enter, exit]),
            [
                "00:00.000000000 cpu#1 pid 10 [cat] read(fd=3, buf=..., count=4096) ...",
                "01:01.000000000 cpu#1 pid 12 [cat] ... read() = 5",
            ]
        );
    }

    #[test]
    fn read_error_shows_pointer_and_mmap_hex() {
        let mut enter = rec(1, 0, 10, "cat", READ, RecordKind::Enter);
        enter.args = [3, 0x1000, 4096, 0, 0, 0];
        let mut exit = rec(2, 1, 10, "cat", READ, RecordKind::Exit);
        exit.args[0] = (-9i64) as u64;
        let mut mmap = rec(3, 2, 10, "cat", 9, RecordKind::Enter);
        mmap.args = [0, 8192, 3, 0x22, u64::MAX, 0];
        let mut mmap_exit = rec(4, 3, 10, "cat", 9, RecordKind::Exit);
        mmap_exit.args[0] = 0x7f00_0000_0000;
        let l = lines(&[enter, exit, mmap, mmap_exit]);
        assert_eq!(
            l[0],
            "00:00.000000000 cpu#1 pid 10 [cat] read(fd=3, buf=0x1000, count=4096) = -9 (EBADF)"
        );
        assert!(l[1].ends_with("mmap(addr=0, len=8192, prot=3, flags=34, fd=18446744073709551615, off=0) = 0x7f0000000000"), "{}", l[1]);
    }

    #[test]
    fn rename_continuation_and_open_flags() {
        let mut enter = rec(1, 0, 10, "mv", 82, RecordKind::Enter);
        enter.args = [0x10, 0x20, 0, 0, 0, 0];
        enter.data = data(0, b"a", false);
        let mut cont = rec(2, 0, 10, "mv", 82, RecordKind::EnterData);
        cont.data = data(1, b"b", false);
        let mut exit = rec(3, 0, 10, "mv", 82, RecordKind::Exit);
        exit.args[0] = 0;
        let mut open = rec(4, 0, 10, "sh", 2, RecordKind::Enter);
        open.args = [0x30, 577, 0o666, 0, 0, 0];
        open.data = data(0, b"/tmp/file-1889", false);
        let l = lines(&[enter, cont, exit, open]);
        assert!(
            l[0].ends_with("rename(oldname=\"a\", newname=\"b\") = 0"),
            "{}",
            l[0]
        );
        assert!(
            l[1].ends_with(
                "open(filename=\"/tmp/file-1889\", flags=O_WRONLY|O_CREAT|O_TRUNC, mode=0666) ..."
            ),
            "{}",
            l[1]
        );
    }

    #[test]
    fn json_object() {
        let mut enter = rec(1, 0, 14276, "cat", OPENAT, RecordKind::Enter);
        enter.args = [(-100i64) as u64, 0x7ffd_0000_1000, 0, 0, 0, 0];
        enter.data = data(1, b"/tmp/file-3240", false);
        let mut exit = rec(2, 9, 14276, "cat", OPENAT, RecordKind::Exit);
        exit.args[0] = (-2i64) as u64;
        let d = Decoder::new(Arch::X86_64, SyscallFormats::fallback());
        let events = d.decode(&[enter, exit]);
        let mut extra = Map::new();
        extra.insert("runtime".into(), json!({"containerName": "mypod"}));
        let v = to_json(&events[0], Timebase::of(&events), &extra);
        assert_eq!(
            v.to_string(),
            concat!(
                r#"{"runtime":{"containerName":"mypod"},"timestamp":5000000000,"#,
                r#""time":"00:00.000000000","cpu":1,"pid":14276,"tid":14276,"comm":"cat","#,
                r#""mntns_id":4026532000,"syscall":"openat","params":[{"name":"dfd","value":-100},"#,
                r#"{"name":"filename","value":"/tmp/file-3240"},{"name":"flags","value":"O_RDONLY"},"#,
                r#"{"name":"mode","value":"0"}],"ret":-2,"error":"ENOENT","state":"complete"}"#
            )
        );
    }

    #[test]
    fn rt_sigreturn_exit_merges() {
        let mut enter = rec(1, 0, 10, "sh", 15, RecordKind::Enter);
        enter.args = [0; 6];
        let mut exit = rec(2, 1, 10, "sh", u32::MAX, RecordKind::Exit);
        exit.args[0] = 13739;
        let lone = rec(3, 2, 11, "sh", u32::MAX, RecordKind::Exit);
        let l = lines(&[enter, exit, lone]);
        assert!(l[0].ends_with("[sh] rt_sigreturn() = 13739"), "{}", l[0]);
        assert!(l[1].ends_with("[sh] ... rt_sigreturn() = 0"), "{}", l[1]);
    }

    #[test]
    fn complete_records() {
        // One record per syscall: the exit completed the enter's record in place.
        let mut read = rec(1, 0, 10, "cat", READ, RecordKind::Complete);
        read.args = [3, 0x1000, 4096, 0, 0, 0];
        read.ret = Some(5);
        read.data = data(1, b"hello", false);
        // A failed read captured nothing: its pointer.
        let mut bad = rec(2, 1, 10, "cat", READ, RecordKind::Complete);
        bad.args = [3, 0x1000, 4096, 0, 0, 0];
        bad.ret = Some(-9);
        // A continuation follows a complete record too.
        let mut rename = rec(3, 2, 10, "mv", 82, RecordKind::Complete);
        rename.args = [0x10, 0x20, 0, 0, 0, 0];
        rename.ret = Some(0);
        rename.data = data(0, b"a", false);
        let mut cont = rec(4, 2, 10, "mv", 82, RecordKind::EnterData);
        cont.data = data(1, b"b", false);
        // An enter the exit could not complete (its capture held the path): a separate exit.
        let mut link = rec(5, 3, 10, "ls", 89, RecordKind::Enter);
        link.args = [0x40, 0x50, 64, 0, 0, 0];
        link.data = data(0, b"/l", false);
        let mut link_exit = rec(6, 4, 10, "ls", 89, RecordKind::Exit);
        link_exit.ret = Some(3);
        link_exit.data = data(1, b"/tg", false);
        let l = lines(&[read, bad, rename, cont, link, link_exit]);
        assert_eq!(
            l,
            [
                "00:00.000000000 cpu#1 pid 10 [cat] read(fd=3, buf=\"hello\", count=4096) = 5",
                "00:00.000000001 cpu#1 pid 10 [cat] read(fd=3, buf=0x1000, count=4096) = -9 (EBADF)",
                "00:00.000000002 cpu#1 pid 10 [mv] rename(oldname=\"a\", newname=\"b\") = 0",
                "00:00.000000003 cpu#1 pid 10 [ls] readlink(path=\"/l\", buf=\"/tg\", bufsiz=64) = 3",
            ]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_bytes(b"a\"b\\\n\x7f\xff"), "a\\\"b\\\\\\n\\x7f\\xff");
    }
}
