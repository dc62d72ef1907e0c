//! The binary record the BPF program writes, and choosing a container's window.
//!
//! Layout (native little endian, `RECORD_SIZE` bytes, mirrored by
//! `struct traceloop_record` in `gadgets/traceloop/program.bpf.c`):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | `seq`: per-container sequence number |
//! | 8 | 8 | `timestamp_raw`: boot ns |
//! | 16 | 8 | `mntns_id` |
//! | 24 | 48 | `args[6]`: enter: the arguments; exit: `args[0]` = return value |
//! | 72 | 4 | `pid` (tgid) |
//! | 76 | 4 | `tid` |
//! | 80 | 4 | `cpu` |
//! | 84 | 4 | `syscall_nr` |
//! | 88 | 16 | `comm` |
//! | 104 | 1 | `kind`: 0 empty slot, 1 enter, 2 exit, 3 enter data continuation |
//! | 105 | 1 | `data_arg`: argument index `data` belongs to, 0xff none |
//! | 106 | 2 | `data_len`: captured bytes (strings: without the NUL) |
//! | 108 | 1 | `data_flags`: bit 0 truncated, bit 1 read failed |
//! | 109 | 3 | padding |
//! | 112 | 128 | `data` |

use super::TraceloopError;

/// Size of one record in the array map.
pub const RECORD_SIZE: usize = 240;
/// Capacity of the captured-bytes payload.
pub const DATA_LEN: usize = 128;
/// `data_arg` value meaning "no captured data".
pub const NO_DATA_ARG: u8 = 0xff;
/// `data_flags` bit: more bytes existed than were captured.
pub const DATA_TRUNCATED: u8 = 1;
/// `data_flags` bit: reading user memory failed.
pub const DATA_FAULT: u8 = 2;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Syscall entry with its six arguments.
    Enter,
    /// Syscall exit with its return value in `args[0]`.
    Exit,
    /// More captured data of the preceding [`RecordKind::Enter`] on the same tid.
    EnterData,
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
    pub args: [u64; 6],
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub nr: u32,
    pub comm: Vec<u8>,
    pub kind: RecordKind,
    pub data: Option<Captured>,
}

impl Record {
    /// The return value of an exit record.
    pub fn ret(&self) -> i64 {
        self.args[0] as i64
    }

    /// Parses one record; `Ok(None)` for an empty (never written) slot.
    pub fn parse(buf: &[u8]) -> Result<Option<Record>, TraceloopError> {
        if buf.len() != RECORD_SIZE {
            return Err(TraceloopError::Record(format!(
                "record is {} bytes, expected {RECORD_SIZE}",
                buf.len()
            )));
        }
        let kind = match buf[104] {
            0 => return Ok(None),
            1 => RecordKind::Enter,
            2 => RecordKind::Exit,
            3 => RecordKind::EnterData,
            k => return Err(TraceloopError::Record(format!("unknown record kind {k}"))),
        };
        let mut args = [0u64; 6];
        for (i, a) in args.iter_mut().enumerate() {
            *a = u64_at(buf, 24 + 8 * i);
        }
        let comm = &buf[88..104];
        let comm_len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        let data_arg = buf[105];
        let data_len = usize::from(u16::from_le_bytes([buf[106], buf[107]])).min(DATA_LEN);
        let flags = buf[108];
        let data = (data_arg != NO_DATA_ARG).then(|| Captured {
            arg: data_arg,
            bytes: buf[112..112 + data_len].to_vec(),
            truncated: flags & DATA_TRUNCATED != 0,
            fault: flags & DATA_FAULT != 0,
        });
        Ok(Some(Record {
            seq: u64_at(buf, 0),
            timestamp: u64_at(buf, 8),
            mntns_id: u64_at(buf, 16),
            args,
            pid: u32_at(buf, 72),
            tid: u32_at(buf, 76),
            cpu: u32_at(buf, 80),
            nr: u32_at(buf, 84),
            comm: comm[..comm_len].to_vec(),
            kind,
            data,
        }))
    }

    /// Serializes the record in the BPF layout (tests and fixtures).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; RECORD_SIZE];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.timestamp.to_le_bytes());
        b[16..24].copy_from_slice(&self.mntns_id.to_le_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[24 + 8 * i..32 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        b[72..76].copy_from_slice(&self.pid.to_le_bytes());
        b[76..80].copy_from_slice(&self.tid.to_le_bytes());
        b[80..84].copy_from_slice(&self.cpu.to_le_bytes());
        b[84..88].copy_from_slice(&self.nr.to_le_bytes());
        let comm_len = self.comm.len().min(15);
        b[88..88 + comm_len].copy_from_slice(&self.comm[..comm_len]);
        b[104] = match self.kind {
            RecordKind::Enter => 1,
            RecordKind::Exit => 2,
            RecordKind::EnterData => 3,
        };
        b[105] = NO_DATA_ARG;
        if let Some(d) = &self.data {
            let n = d.bytes.len().min(DATA_LEN);
            b[105] = d.arg;
            b[106..108].copy_from_slice(&(n as u16).to_le_bytes());
            b[108] = (u8::from(d.truncated) * DATA_TRUNCATED) | (u8::from(d.fault) * DATA_FAULT);
            b[112..112 + n].copy_from_slice(&d.bytes[..n]);
        }
        b
    }
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

/// Parses a dump of consecutive records (e.g. one container's part of the array), skipping
/// empty slots.
pub fn parse_records(buf: &[u8]) -> Result<Vec<Record>, TraceloopError> {
    if !buf.len().is_multiple_of(RECORD_SIZE) {
        return Err(TraceloopError::Record(format!(
            "dump of {} bytes is not a multiple of {RECORD_SIZE}",
            buf.len()
        )));
    }
    let mut out = Vec::new();
    for chunk in buf.chunks_exact(RECORD_SIZE) {
        if let Some(r) = Record::parse(chunk)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, mntns: u64) -> Record {
        Record {
            seq,
            timestamp: 1000 + seq,
            mntns_id: mntns,
            args: [1, 2, 3, 4, 5, u64::MAX],
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
    fn roundtrip() {
        let r = rec(5, 7);
        let b = r.to_bytes();
        assert_eq!(b.len(), RECORD_SIZE);
        assert_eq!(Record::parse(&b).expect("parse"), Some(r));
        assert_eq!(Record::parse(&[0u8; RECORD_SIZE]).expect("empty"), None);
        assert!(Record::parse(&[0u8; 3]).is_err());
    }

    #[test]
    fn window() {
        let mut dump = Vec::new();
        for r in [rec(9, 7), rec(3, 7), rec(8, 7), rec(9, 8), rec(10, 7)] {
            dump.extend(r.to_bytes());
        }
        dump.extend([0u8; RECORD_SIZE]);
        let all = parse_records(&dump).expect("parse");
        assert_eq!(all.len(), 5);
        let w = select_window(all.clone(), 7, 0, 10, 4);
        assert_eq!(w.iter().map(|r| r.seq).collect::<Vec<_>>(), [8, 9]);
        // a previous owner with the same inode wrote seq 8
        let w = select_window(all, 7, 9, 10, 4);
        assert_eq!(w.iter().map(|r| r.seq).collect::<Vec<_>>(), [9]);
        assert!(parse_records(&dump[1..]).is_err());
    }
}
