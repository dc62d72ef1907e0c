//! A same-machine client's lines pipe, handed to the daemon over its Unix socket, so that the
//! run writes its JSON lines into it directly (see [`super::lines_pipe`]).
//!
//! Wire: before HTTP/2 starts, a client that passes a pipe sends one byte, [`PREAMBLE`],
//! carrying the descriptor as `SCM_RIGHTS` ancillary data (unix(7)). Every other connection (an
//! `ig` client that passes nothing, grpcurl, any gRPC client) begins with HTTP/2's connection
//! preface, `PRI * HTTP/2.0` (RFC 9113 §3.4), so the daemon peeks at the first byte to tell them
//! apart and leaves HTTP/2's bytes where they are. A passed descriptor belongs to its
//! connection: the first run on it takes it, and it is closed with the connection otherwise;
//! one that is not a pipe's write end is closed on receipt.
//!
//! Our own code because neither tonic nor tokio passes descriptors; std's ancillary-data API is
//! unstable.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::gadget::metadata::debug;

/// The first byte of a connection that passes a descriptor. Never the first byte of HTTP/2.
pub const PREAMBLE: u8 = 0x01;

/// How long a new connection may take to send its first byte before it is closed.
const FIRST_BYTE_WAIT: Duration = Duration::from_secs(10);

/// Descriptors one preamble may carry; more are closed on receipt.
const MAX_FDS: usize = 4;

/// The descriptor a connection passed, until a run takes it.
#[derive(Clone, Default)]
pub struct PassedFd(Arc<Mutex<Option<OwnedFd>>>);

impl PassedFd {
    /// The descriptor, once: `None` when the connection passed none or a run took it.
    pub fn take(&self) -> Option<OwnedFd> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// An accepted Unix connection, with what it passed. tonic hands [`PassedFd`] to every request
/// of the connection (as the request's `ConnectInfo` extension).
pub struct Conn {
    stream: UnixStream,
    passed: PassedFd,
}

impl Connected for Conn {
    type ConnectInfo = PassedFd;
    fn connect_info(&self) -> PassedFd {
        self.passed.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The listener's connections once their first byte is known, for tonic's
/// `serve_with_incoming`. A connection that sends nothing for [`FIRST_BYTE_WAIT`] or closes
/// first is dropped without holding up the others; the accept loop ends when the server drops
/// the stream.
pub fn incoming(listener: UnixListener) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = tx.closed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors, most likely: wait for some to be closed.
                        eprintln!("ig daemon: accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(FIRST_BYTE_WAIT, first_byte(stream)).await {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(e)) => debug(&format!("a connection closed before it began: {e}")),
                    Err(_) => debug(&format!(
                        "a connection sent nothing for {FIRST_BYTE_WAIT:?}"
                    )),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Reads the preamble if the connection begins with one; HTTP/2's first byte is left unread.
async fn first_byte(stream: UnixStream) -> io::Result<Conn> {
    let fd = stream.as_raw_fd();
    let mut first = 0u8;
    loop {
        stream.readable().await?;
        // SAFETY: `first` is a valid one-byte buffer for the call.
        let peeked = stream.try_io(Interest::READABLE, || {
            cvt(unsafe { libc::recv(fd, (&mut first as *mut u8).cast(), 1, libc::MSG_PEEK) })
        });
        match peeked {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    let mut passed = None;
    if first == PREAMBLE {
        loop {
            stream.readable().await?;
            match stream.try_io(Interest::READABLE, || receive_fds(fd)) {
                Ok(fds) => {
                    // Only a pipe's write end is kept; anything else is closed at once (a
                    // connection passing its own socket would otherwise keep itself open).
                    passed = fds
                        .into_iter()
                        .next()
                        .filter(|fd| super::lines_pipe::check_write_end(fd).is_ok());
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Conn {
        stream,
        passed: PassedFd(Arc::new(Mutex::new(passed))),
    })
}

fn cvt(rc: isize) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Bytes of a control message buffer: room for [`MAX_SENT_FDS`] descriptors.
const CONTROL_BYTES: usize = 128;

/// A control message buffer, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct ControlBuf([u8; CONTROL_BYTES]);

/// Receives the preamble byte and the descriptors it carries (owned: closed when dropped).
fn receive_fds(sock: RawFd) -> io::Result<Vec<OwnedFd>> {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let mut control = ControlBuf([0; CONTROL_BYTES]);
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) };
    debug_assert!(space as usize <= control.0.len());
    // SAFETY: zeroed msghdr is a valid empty header; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = space as usize;
    // SAFETY: `msg` describes valid buffers; MSG_CMSG_CLOEXEC keeps the descriptors from runs'
    // children.
    let n = cvt(unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) })?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg_control` with well-formed headers up to `msg_controllen`;
    // the CMSG_* macros walk them within it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let len = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    // Every received descriptor is ours now, to keep or to close.
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(fds)
}

/// Connects to the daemon's socket and passes `fd` in the preamble. Blocking: run it off the
/// async threads.
pub fn connect_passing(
    path: &Path,
    fd: BorrowedFd<'_>,
) -> io::Result<std::os::unix::net::UnixStream> {
    let stream = std::os::unix::net::UnixStream::connect(path)?;
    send_preamble(&stream, &[fd])?;
    Ok(stream)
}

/// Descriptors one [`send_preamble`] sends at most.
pub const MAX_SENT_FDS: usize = 16;

/// Sends the preamble byte with `fds` (at most [`MAX_SENT_FDS`]) as `SCM_RIGHTS`.
pub fn send_preamble(
    stream: &std::os::unix::net::UnixStream,
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if fds.is_empty() || fds.len() > MAX_SENT_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a preamble carries 1 to {MAX_SENT_FDS} descriptors"),
        ));
    }
    let mut byte = PREAMBLE;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let mut control = ControlBuf([0; CONTROL_BYTES]);
    let payload = std::mem::size_of_val(fds) as u32;
    // SAFETY: pure computations of sizes.
    let (space, len) = unsafe { (libc::CMSG_SPACE(payload), libc::CMSG_LEN(payload)) };
    debug_assert!(space as usize <= CONTROL_BYTES);
    // SAFETY: zeroed msghdr is a valid empty header; the pointers set below outlive the call,
    // and the one control message written fits `control` (`space` bytes, aligned).
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = space as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = len as usize;
        let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
        for (i, fd) in fds.iter().enumerate() {
            data.add(i).write_unaligned(fd.as_raw_fd());
        }
        cvt(libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL))?
    };
    if sent != 1 {
        return Err(io::Error::other("the daemon's socket took no preamble"));
    }
    Ok(())
}
