//! A client's stdout, passed over the socket ([`super::passfd`]): the run thread writes the
//! client's JSON lines into it itself, so neither the socket nor the client's process touches
//! them. Measured on a 100,000-exec storm: the CPU a remote run adds per event went from the
//! daemon's and the client's together to what a local run costs (see the README's daemon bench).
//!
//! Never blocks the run on a slow reader. A pipe is written through its own non-blocking open
//! file description (`/proc/self/fd/N` reopened with `O_NONBLOCK`: setting the flag on the
//! passed description would change it for the client's shell too); what the pipe does not take
//! waits in a queue of at most [`super::hub::CLIENT_BUFFER_EVENTS`] events, like a client's
//! queue on the socket, and batches that do not fit are counted as missed and told to the
//! client (`Missed`) once the reader is back or the run ends. A regular file is written like a
//! local run writes it: at once, through the passed description (its offset is the client's).
//! Other kinds (terminals, sockets) and descriptors not open for writing are refused: the run
//! then sends the lines over the socket.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pipe,
    File,
}

pub struct ClientStdout {
    out: File,
    kind: Kind,
    /// Lines the pipe has not taken yet: batches with their event counts, oldest first, and
    /// how much of the oldest was written.
    pending: VecDeque<(Vec<u8>, u64)>,
    written_of_front: usize,
    pending_events: u64,
    limit_events: u64,
    /// Events dropped since the client was last told.
    missed: u64,
}

/// What a write did.
#[derive(Debug, PartialEq, Eq)]
pub enum Wrote {
    /// Written or queued; `told` events missed before are now to be told to the client.
    Open { told: u64 },
    /// The reader is gone (`EPIPE`): the run stops, as a local run does.
    Closed,
}

impl ClientStdout {
    /// The run's writer into `fd`. Errors: `fd` is not open for writing, or is not a pipe or
    /// a regular file, or a pipe could not be reopened (its reader is gone: `ENXIO`).
    pub fn new(fd: OwnedFd, limit_events: u64) -> io::Result<Self> {
        let raw = fd.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the passed descriptor is not open for writing",
            ));
        }
        let file = File::from(fd);
        let ft = file.metadata()?.file_type();
        use std::os::unix::fs::FileTypeExt;
        let (out, kind) = if ft.is_fifo() {
            use std::os::unix::fs::OpenOptionsExt;
            // The same pipe, through a description of our own.
            let own = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(format!("/proc/self/fd/{}", file.as_fd().as_raw_fd()))?;
            (own, Kind::Pipe)
        } else if ft.is_file() {
            (file, Kind::File)
        } else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the passed descriptor is neither a pipe nor a regular file",
            ));
        };
        Ok(ClientStdout {
            out,
            kind,
            pending: VecDeque::new(),
            written_of_front: 0,
            pending_events: 0,
            limit_events,
            missed: 0,
        })
    }

    /// Writes the lines of `count` events, or queues them behind what the pipe has not taken,
    /// or counts them missed when the queue is full. Errors: the file's (a full disk).
    pub fn write(&mut self, count: u64, lines: &[u8]) -> io::Result<Wrote> {
        if self.kind == Kind::File {
            return match self.out.write_all(lines) {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Wrote::Closed),
                Err(e) => Err(e),
                Ok(()) => Ok(Wrote::Open { told: 0 }),
            };
        }
        if !self.write_pending()? {
            return Ok(Wrote::Closed);
        }
        let mut rest = lines;
        if self.pending.is_empty() {
            match write_some(&mut self.out, rest)? {
                None => return Ok(Wrote::Closed),
                Some(n) => rest = &rest[n..],
            }
        }
        if !rest.is_empty() {
            if self.pending_events + count > self.limit_events {
                self.missed += count;
                return Ok(Wrote::Open { told: 0 });
            }
            self.pending.push_back((rest.to_vec(), count));
            self.pending_events += count;
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
            match write_some(&mut self.out, &front[self.written_of_front..])? {
                None => return Ok(false),
                Some(0) => break,
                Some(n) => {
                    self.written_of_front += n;
                    if self.written_of_front == front.len() {
                        self.pending_events -= count;
                        self.pending.pop_front();
                        self.written_of_front = 0;
                    }
                }
            }
        }
        Ok(true)
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
    /// stopping); what is left is missed. Only then can a line be left cut, as when a local run
    /// is killed while it writes. Returns the missed events not told yet.
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
        self.missed += self.pending_events;
        self.pending.clear();
        self.pending_events = 0;
        self.written_of_front = 0;
        Ok(std::mem::take(&mut self.missed))
    }
}

/// One non-blocking write: `Some(bytes taken)` (0: the pipe is full), `None`: the reader is
/// gone.
fn write_some(out: &mut File, data: &[u8]) -> io::Result<Option<usize>> {
    if data.is_empty() {
        return Ok(Some(0));
    }
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
        format!("{{\"n\":{i}}}\n").into_bytes()
    }

    #[test]
    fn a_pipe_nobody_reads_queues_up_to_the_limit_then_counts_missed() {
        let (mut reader, writer) = pipe();
        let mut out = ClientStdout::new(writer, 1000).unwrap();
        let batch: Vec<u8> = (0..100).flat_map(line).collect();
        // 64 KiB of pipe, then 1,000 events queued, then the rest missed; never blocking.
        let mut sent = 0;
        for _ in 0..200 {
            assert_eq!(out.write(100, &batch).unwrap(), Wrote::Open { told: 0 });
            sent += 100;
        }
        let mut got = Vec::new();
        // Reading everything lets the queue drain; the misses are told once it is empty.
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = reader.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            if !out.write_pending().unwrap() || out.pending.is_empty() {
                break;
            }
        }
        let missed = out.finish(|| true).unwrap();
        drop(out);
        reader.read_to_end(&mut got).unwrap();
        let lines = got.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64;
        assert!(missed > 0, "nothing missed");
        assert_eq!(lines + missed, sent, "lines {lines} + missed {missed}");
        // Whole lines only: every line parses.
        for l in got.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            assert!(l.starts_with(b"{\"n\":") && l.ends_with(b"}"), "{l:?}");
        }
    }

    #[test]
    fn a_closed_pipe_says_closed_and_a_read_only_descriptor_is_refused() {
        let (reader, writer) = pipe();
        let mut out = ClientStdout::new(writer, 10).unwrap();
        drop(reader);
        assert_eq!(out.write(1, &line(1)).unwrap(), Wrote::Closed);

        let (reader, _writer) = pipe();
        let err = ClientStdout::new(reader.into(), 10).err().unwrap();
        assert!(err.to_string().contains("not open for writing"), "{err}");
    }

    #[test]
    fn a_regular_file_gets_every_line_at_the_shared_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut mine = File::create(&path).unwrap();
        mine.write_all(b"first\n").unwrap();
        let passed: OwnedFd = mine.try_clone().unwrap().into();
        let mut out = ClientStdout::new(passed, 10).unwrap();
        for i in 0..50 {
            assert_eq!(out.write(1, &line(i)).unwrap(), Wrote::Open { told: 0 });
        }
        assert_eq!(out.finish(|| true).unwrap(), 0);
        mine.write_all(b"last\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("first\n{\"n\":0}\n"), "{text}");
        assert!(text.ends_with("{\"n\":49}\nlast\n"), "{text}");
        assert_eq!(text.lines().count(), 52);
    }
}
