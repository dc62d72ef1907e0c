//! The write end of a client's lines pipe, passed over the socket ([`super::passfd`]): the run
//! thread writes the client's JSON lines into it itself, and the client moves them from the
//! pipe's other end to its stdout (`splice`), so the lines cross neither the socket nor the
//! client's decoder. Measured on a 20,000-exec storm: a remote run's CPU per event is 0.1 µs
//! more than a local run's (see the README's daemon bench).
//!
//! The pipe is the client's own, never its stdout: every write to a user's file is the user's
//! (its limits, quota and offset), and when the client dies the pipe's reader is gone, so the
//! daemon's next write fails (`EPIPE`) and nothing is written after the client's end.
//!
//! Never blocks the run: the pipe is written non-blocking; what it does not take waits in a
//! queue of at most [`super::hub::CLIENT_BUFFER_EVENTS`] events, like a client's queue on the
//! socket, and batches that do not fit are counted as missed and told to the client (`Missed`)
//! once the queue has emptied or the run ends. Writes hold whole lines only: each write is cut
//! to the room the pipe surely has (its size and unread bytes, `F_GETPIPE_SZ` and `FIONREAD`,
//! and the buffers our earlier writes may have left partly filled), so a run that ends while
//! the reader is stuck leaves no half line, and the missed count is exact.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// The kernel's pipe buffer unit (a page): the room of a pipe is counted in whole buffers.
const PIPE_BUF_UNIT: usize = 4096;

pub struct LinesPipeWriter {
    out: File,
    /// Lines the pipe has not taken yet: batches with their event counts, oldest first, how
    /// much of the oldest was written, and how many of its lines that was.
    pending: VecDeque<(Vec<u8>, u64)>,
    written_of_front: usize,
    lines_of_front: u64,
    writes_since_empty: usize,
    pending_events: u64,
    limit_events: u64,
    /// Events dropped since the client was last told.
    missed: u64,
}

/// Checks that `fd` is a pipe's write end (a FIFO open for writing only); returns its file
/// status flags. Errors: it is not, or `fcntl`/`fstat` failed.
pub fn check_write_end(fd: &OwnedFd) -> io::Result<libc::c_int> {
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_ACCMODE != libc::O_WRONLY {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the passed descriptor is not a pipe's write end",
        ));
    }
    // SAFETY: fstat on a descriptor we own, into a zeroed stat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the passed descriptor is not a pipe",
        ));
    }
    Ok(flags)
}

/// What a write did.
#[derive(Debug, PartialEq, Eq)]
pub enum Wrote {
    /// Written or queued; `told` events missed before are now to be told to the client.
    Open { told: u64 },
    /// The reader is gone (`EPIPE`): the client's end; the run stops.
    Closed,
}

impl LinesPipeWriter {
    /// The run's writer into `fd`, made non-blocking. Errors: `fd` is not a pipe's write end.
    pub fn new(fd: OwnedFd, limit_events: u64) -> io::Result<Self> {
        let flags = check_write_end(&fd)?;
        let raw = fd.as_raw_fd();
        let out = File::from(fd);
        // The pipe is the client's and ours alone (its write end was sent, then closed by the
        // client): the flag changes no one else's writes.
        // SAFETY: fcntl on a descriptor we own.
        if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(LinesPipeWriter {
            out,
            pending: VecDeque::new(),
            written_of_front: 0,
            lines_of_front: 0,
            writes_since_empty: 0,
            pending_events: 0,
            limit_events,
            missed: 0,
        })
    }

    /// Writes the lines of `count` events as far as the pipe takes them, and queues the rest
    /// behind what the pipe has not taken, or counts them missed when the queue is full.
    pub fn write(&mut self, count: u64, lines: &[u8]) -> io::Result<Wrote> {
        if !self.write_pending()? {
            return Ok(Wrote::Closed);
        }
        let (mut taken, mut lines_taken) = (0, 0);
        if self.pending.is_empty() {
            match self.write_whole(lines)? {
                None => return Ok(Wrote::Closed),
                Some((n, l)) => (taken, lines_taken) = (n, l),
            }
        }
        let rest = &lines[taken..];
        if !rest.is_empty() {
            let count = count - lines_taken.min(count);
            if !self.pending.is_empty() && self.pending_events + count > self.limit_events {
                self.missed += count;
            } else {
                self.pending.push_back((rest.to_vec(), count));
                self.pending_events += count;
            }
        }
        Ok(Wrote::Open {
            told: self.take_missed_if_caught_up(),
        })
    }

    /// Writes what is queued, as far as the pipe takes it now; the misses are told once the
    /// queue is empty.
    pub fn drain(&mut self) -> io::Result<Wrote> {
        if !self.write_pending()? {
            return Ok(Wrote::Closed);
        }
        Ok(Wrote::Open {
            told: self.take_missed_if_caught_up(),
        })
    }

    /// `Ok(false)`: the reader is gone.
    fn write_pending(&mut self) -> io::Result<bool> {
        while let Some((front, count)) = self.pending.front() {
            let rest = &front[self.written_of_front..];
            let mut whole = WholeWriter {
                out: &mut self.out,
                writes_since_empty: &mut self.writes_since_empty,
            };
            let Some((n, lines)) = whole.write_whole(rest)? else {
                return Ok(false);
            };
            if n == 0 {
                break;
            }
            self.lines_of_front += lines;
            self.written_of_front += n;
            if self.written_of_front == front.len() {
                self.pending_events -= count;
                self.pending.pop_front();
                self.written_of_front = 0;
                self.lines_of_front = 0;
            }
        }
        Ok(true)
    }

    fn write_whole(&mut self, data: &[u8]) -> io::Result<Option<(usize, u64)>> {
        WholeWriter {
            out: &mut self.out,
            writes_since_empty: &mut self.writes_since_empty,
        }
        .write_whole(data)
    }

    /// Events missed, to be told now that the queue has emptied (the reader caught up).
    fn take_missed_if_caught_up(&mut self) -> u64 {
        if self.pending.is_empty() {
            std::mem::take(&mut self.missed)
        } else {
            0
        }
    }

    /// The run's end: waits for the pipe to take the queue, as a local run waits for its
    /// stdout, while `keep_waiting()` holds (the client is there and the daemon is not
    /// stopping); what is left is missed, to the event (writes hold whole lines). Returns the
    /// missed events not told yet.
    pub fn finish(&mut self, keep_waiting: impl Fn() -> bool) -> io::Result<u64> {
        while !self.pending.is_empty() {
            if !self.write_pending()? || self.pending.is_empty() || !keep_waiting() {
                break;
            }
            let mut pfd = libc::pollfd {
                fd: self.out.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd. Interrupted or failed: the loop asks again.
            unsafe { libc::poll(&mut pfd, 1, 100) };
        }
        self.missed += self.pending_events - self.lines_of_front.min(self.pending_events);
        self.pending.clear();
        self.pending_events = 0;
        self.written_of_front = 0;
        self.lines_of_front = 0;
        Ok(std::mem::take(&mut self.missed))
    }
}

/// Writes into the pipe whole lines only, as many as it has room for.
struct WholeWriter<'a> {
    out: &'a mut File,
    /// Our writes since the pipe was last seen empty: each may have left a partly filled
    /// buffer behind it (a write's tail merges into the last buffer only when it fits there;
    /// pipe_write(), fs/pipe.c), so each may take one buffer more than its bytes.
    writes_since_empty: &'a mut usize,
}

impl WholeWriter<'_> {
    /// Writes the longest run of whole lines of `data` the pipe takes now (a line longer than
    /// an empty pipe holds goes in parts): `Some((bytes, lines))` written, the lines counted
    /// only when not all of `data` went (the caller knows a whole batch's count; scanning every
    /// byte would cost a storm 0.3 µs per event), `None`: the reader is gone.
    fn write_whole(&mut self, data: &[u8]) -> io::Result<Option<(usize, u64)>> {
        let room = self.room()?;
        let take = if room >= data.len() {
            data.len()
        } else {
            match data[..room].iter().rposition(|&b| b == b'\n') {
                Some(end) => end + 1,
                None if self.unread()? == 0 => room,
                None => 0,
            }
        };
        if take == 0 {
            return Ok(Some((0, 0)));
        }
        let written = write_some(self.out, &data[..take])?;
        if written.is_some_and(|n| n > 0) {
            *self.writes_since_empty += 1;
        }
        Ok(written.map(|n| {
            let lines = if n == data.len() {
                0
            } else {
                data[..n].iter().filter(|&&b| b == b'\n').count() as u64
            };
            (n, lines)
        }))
    }

    /// Bytes the pipe takes now without a short write: its free buffers, each a page, not
    /// counting those its unread bytes may occupy (full ones, one partly filled per write, and
    /// the one the reader is in).
    fn room(&mut self) -> io::Result<usize> {
        let fd = self.out.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own.
        let size = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        let unread = self.unread()?;
        let buffers = size as usize / PIPE_BUF_UNIT;
        let used = if unread == 0 {
            *self.writes_since_empty = 0;
            0
        } else {
            unread.div_ceil(PIPE_BUF_UNIT) + *self.writes_since_empty + 1
        };
        Ok(buffers.saturating_sub(used) * PIPE_BUF_UNIT)
    }

    /// Bytes written to the pipe and not read yet.
    fn unread(&self) -> io::Result<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        if unsafe { libc::ioctl(self.out.as_raw_fd(), libc::FIONREAD, &mut n) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n.max(0) as usize)
    }
}

/// One non-blocking write: `Some(bytes taken)` (0: the pipe is full), `None`: the reader is
/// gone.
fn write_some(out: &mut File, data: &[u8]) -> io::Result<Option<usize>> {
    loop {
        return match out.write(data) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Some(0)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(None),
            Err(e) => Err(e),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    fn pipe() -> (File, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: a two-int array for pipe2.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are new and ours.
        unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn line(i: u64) -> Vec<u8> {
        format!(
            "{{\"n\":{i},\"pad\":\"{}\"}}\n",
            "x".repeat((i % 300) as usize)
        )
        .into_bytes()
    }

    fn whole_lines(got: &[u8]) -> u64 {
        assert!(got.is_empty() || got.ends_with(b"\n"), "a cut last line");
        for l in got.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            assert!(l.starts_with(b"{\"n\":") && l.ends_with(b"\"}"), "{l:?}");
        }
        got.iter().filter(|&&b| b == b'\n').count() as u64
    }

    #[test]
    fn a_pipe_nobody_reads_queues_up_to_the_limit_then_counts_missed() {
        let (mut reader, writer) = pipe();
        let mut out = LinesPipeWriter::new(writer, 1000).unwrap();
        // 64 KiB of pipe, then 1,000 events queued, then the rest missed; never blocking.
        let mut sent = 0;
        for b in 0..200 {
            let batch: Vec<u8> = (b * 100..b * 100 + 100).flat_map(line).collect();
            assert_eq!(out.write(100, &batch).unwrap(), Wrote::Open { told: 0 });
            sent += 100;
        }
        let mut got = Vec::new();
        // Reading everything lets the queue drain; the misses are told once it is empty.
        let mut buf = vec![0; 1 << 20];
        let told = loop {
            let n = reader.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            match out.drain().unwrap() {
                Wrote::Open { told } if told > 0 => break told,
                Wrote::Open { .. } => {}
                Wrote::Closed => panic!("closed"),
            }
        };
        assert_eq!(out.finish(|| true).unwrap(), 0);
        drop(out);
        reader.read_to_end(&mut got).unwrap();
        let lines = whole_lines(&got);
        assert!(told > 0, "nothing missed");
        assert_eq!(lines + told, sent, "lines {lines} + missed {told}");
    }

    #[test]
    fn a_run_that_ends_with_its_reader_stuck_leaves_whole_lines_and_an_exact_count() {
        let (mut reader, writer) = pipe();
        let mut out = LinesPipeWriter::new(writer, 100_000).unwrap();
        let (mut sent, mut got) = (0, Vec::new());
        for b in 0..80 {
            // Batches whose tails leave buffers partly filled, and a reader that takes part of
            // a buffer now and then.
            let batch: Vec<u8> = (b * 7..b * 7 + 7).flat_map(line).collect();
            out.write(7, &batch).unwrap();
            sent += 7;
            if b % 9 == 0 {
                let mut part = vec![0; 5000];
                let n = reader.read(&mut part).unwrap();
                got.extend_from_slice(&part[..n]);
            }
        }
        // The reader reads no more before the end: what the pipe holds is whole lines.
        let missed = out.finish(|| false).unwrap();
        drop(out);
        reader.read_to_end(&mut got).unwrap();
        let lines = whole_lines(&got);
        assert!(missed > 0 && lines > 0, "lines {lines} missed {missed}");
        assert_eq!(lines + missed, sent);
    }

    #[test]
    fn a_closed_pipe_says_closed_and_other_descriptors_are_refused() {
        let (reader, writer) = pipe();
        let mut out = LinesPipeWriter::new(writer, 10).unwrap();
        drop(reader);
        assert_eq!(out.write(1, &line(1)).unwrap(), Wrote::Closed);

        let (reader, _writer) = pipe();
        let err = LinesPipeWriter::new(reader.into(), 10).err().unwrap();
        assert!(err.to_string().contains("not a pipe's write end"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        let err = LinesPipeWriter::new(file.into(), 10).err().unwrap();
        assert!(err.to_string().contains("not a pipe"), "{err}");
    }
}
