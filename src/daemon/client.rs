//! A client of `ig daemon`: connecting to it, and printing a run's events the way a local run
//! prints them (the same sinks, fed from the wire).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};

use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use super::convert::datasource_from_proto;
use super::proto::{self, gadget_manager_client::GadgetManagerClient, run_event::Kind};
use super::DaemonError;
use crate::operators::fields::FieldSelection;
use crate::output::{make_sink, ArraySink, ArrayWriter, OutputMode, Sink};
use crate::run::columns_for;

pub type Client = GadgetManagerClient<Channel>;

const MAX_DATASOURCES: usize = 1024;

/// PEM texts a TCP client proves itself with, and the CA its server's certificate must chain to.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    pub server_ca: Option<Vec<u8>>,
}

/// Where a daemon listens: `unix:///PATH` or `tcp://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Unix(std::path::PathBuf),
    Tcp(String),
}

impl std::str::FromStr for Remote {
    type Err = DaemonError;
    fn from_str(s: &str) -> Result<Self, DaemonError> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.starts_with('/') {
                return Ok(Remote::Unix(path.into()));
            }
        } else if let Some(addr) = s.strip_prefix("tcp://") {
            if addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                return Ok(Remote::Tcp(addr.to_string()));
            }
        }
        Err(DaemonError::Invalid(format!(
            "invalid daemon address {s:?}: use unix:///path/to/socket or tcp://HOST:PORT"
        )))
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remote::Unix(p) => write!(f, "unix://{}", p.display()),
            Remote::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// The innermost I/O error of a transport error, to say why a connection failed.
fn io_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut found = None;
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            found = Some(io);
        }
        cur = err.source();
    }
    found
}

fn connect_error(remote: &Remote, e: &(dyn std::error::Error + 'static)) -> DaemonError {
    let why = match io_cause(e) {
        Some(io) => match io.kind() {
            std::io::ErrorKind::PermissionDenied => {
                format!("permission denied ({io}): only root and the daemon's --group may connect")
            }
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                format!("no ig daemon answers ({io}); start one with `sudo ig daemon`")
            }
            _ => io.to_string(),
        },
        None => {
            let mut text = e.to_string();
            let mut cur = e.source();
            while let Some(s) = cur {
                text.push_str(": ");
                text.push_str(&s.to_string());
                cur = s.source();
            }
            text
        }
    };
    DaemonError::Connect(format!("cannot connect to the daemon at {remote}: {why}"))
}

/// Connects (eagerly: a daemon that is not there is an error now, not at the first call).
pub async fn connect(remote: &Remote, tls: &ClientTls) -> Result<Client, DaemonError> {
    let channel = match remote {
        Remote::Unix(path) => unix_channel(remote, path, None).await?,
        Remote::Tcp(addr) => {
            let secure = tls.server_ca.is_some() || tls.cert.is_some();
            let scheme = if secure { "https" } else { "http" };
            let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
                .map_err(|e| DaemonError::Invalid(format!("daemon address {addr}: {e}")))?;
            if secure {
                let mut config = ClientTlsConfig::new();
                if let Some(ca) = &tls.server_ca {
                    config = config.ca_certificate(Certificate::from_pem(ca));
                }
                match (&tls.cert, &tls.key) {
                    (Some(cert), Some(key)) => {
                        config = config.identity(Identity::from_pem(cert, key))
                    }
                    (None, None) => {}
                    _ => {
                        return Err(DaemonError::Invalid(
                            "--tls-cert and --tls-key go together".into(),
                        ))
                    }
                }
                endpoint = endpoint
                    .tls_config(config)
                    .map_err(|e| DaemonError::Invalid(format!("TLS: {e}")))?;
            }
            endpoint
                .connect()
                .await
                .map_err(|e| connect_error(remote, &e))?
        }
    };
    Ok(GadgetManagerClient::new(channel).max_decoding_message_size(64 << 20))
}

/// A run's lines pipe: the daemon writes the run's JSON lines into its write end, passed over
/// the socket in the connection's preamble (see [`super::passfd`]); a thread of this process
/// moves them to stdout (`std::io::copy`, which splices where the kernel can). The daemon
/// never writes this process's stdout itself: the writes to it are this process's own (its
/// limits, quota and file offset), and they end with it.
pub struct LinesPipe {
    done: tokio::sync::oneshot::Receiver<std::io::Result<()>>,
}

/// Connects to a daemon's Unix socket with a new lines pipe: a run on this connection whose
/// spec says `lines_pipe_passed` has its JSON lines written into it.
pub async fn connect_with_lines_pipe(remote: &Remote) -> Result<(Client, LinesPipe), DaemonError> {
    let Remote::Unix(path) = remote else {
        return Err(DaemonError::Invalid(
            "only a daemon on this machine's Unix socket takes a lines pipe".into(),
        ));
    };
    let (read_end, write_end) =
        lines_pipe().map_err(|e| DaemonError::Connect(format!("creating the lines pipe: {e}")))?;
    // Taken by the first connection: the client keeps no copy of the write end, so the pipe
    // ends when the daemon closes its own.
    let write_end = std::sync::Arc::new(std::sync::Mutex::new(Some(write_end)));
    let channel = unix_channel(remote, path, Some(write_end)).await?;
    // Its own descriptor of stdout, not `Stdout`: the copy would hold stdout's lock while it
    // waits for lines, and the run's other output (a flight recorder's text) would wait on it.
    let mut stdout = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(|e| DaemonError::Connect(format!("stdout: {e}")))?;
    let (tx, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ig-lines".into())
        .spawn(move || {
            let mut read_end = read_end;
            let copied = std::io::copy(&mut read_end, &mut stdout);
            // A closed stdout ends the copy as it ends a local run; dropping the read end
            // then ends the daemon's run (EPIPE).
            let result = match copied {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
                _ => Ok(()),
            };
            drop(read_end);
            let _ = tx.send(result);
        })
        .map_err(|e| DaemonError::Connect(format!("starting the lines thread: {e}")))?;
    let client = GadgetManagerClient::new(channel).max_decoding_message_size(64 << 20);
    Ok((client, LinesPipe { done }))
}

impl LinesPipe {
    /// Waits until every line reached stdout: the daemon closed its end (it does before the
    /// run's `End`). Errors: writing stdout's.
    pub async fn finish(self) -> std::io::Result<()> {
        self.done
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the lines thread stopped")))
    }
}

/// A pipe as large as an unprivileged process may make it (bursts wait in it, not in the
/// daemon's queue): (read end, write end).
fn lines_pipe() -> std::io::Result<(std::fs::File, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: a two-int array for pipe2.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours.
    let (r, w) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_int>().ok())
        .unwrap_or(1 << 20)
        .min(1 << 20);
    // Best effort: a smaller pipe only means more waits in the daemon's queue.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, max) };
    Ok((r, w))
}

type PassOnce = std::sync::Arc<std::sync::Mutex<Option<std::os::fd::OwnedFd>>>;

async fn unix_channel(
    remote: &Remote,
    path: &std::path::Path,
    pass: Option<PassOnce>,
) -> Result<Channel, DaemonError> {
    let path = path.to_path_buf();
    // The URI is not used for a Unix socket; the connector decides where to go.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            let fd = pass
                .as_ref()
                .and_then(|p| p.lock().unwrap_or_else(|e| e.into_inner()).take());
            async move {
                let stream = match fd {
                    Some(fd) => {
                        let std = tokio::task::spawn_blocking(move || {
                            super::passfd::connect_passing(&path, fd.as_fd())
                        })
                        .await
                        .map_err(std::io::Error::other)??;
                        std.set_nonblocking(true)?;
                        tokio::net::UnixStream::from_std(std)?
                    }
                    None => tokio::net::UnixStream::connect(path).await?,
                };
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| connect_error(remote, &e))
}

/// Whether a run's lines may come through a lines pipe (`IG_REMOTE_PIPE=0`: over the socket).
pub fn lines_pipe_wanted() -> bool {
    std::env::var("IG_REMOTE_PIPE").map_or(true, |v| v != "0")
}

/// A gRPC status as the error it carries. The daemon answers with NotFound, AlreadyExists,
/// InvalidArgument, FailedPrecondition or Internal; the other codes come from the transport:
/// the connection failed or was closed under the call.
pub fn status_error(remote: &Remote, s: tonic::Status) -> DaemonError {
    let msg = s.message().to_string();
    match s.code() {
        tonic::Code::NotFound => DaemonError::NotFound(msg),
        tonic::Code::AlreadyExists => DaemonError::Exists(msg),
        tonic::Code::InvalidArgument => DaemonError::Invalid(msg),
        tonic::Code::FailedPrecondition => DaemonError::Image(msg),
        tonic::Code::Internal => DaemonError::Internal(msg),
        _ => {
            let DaemonError::Connect(mut text) = connect_error(remote, &s) else {
                return DaemonError::Internal(msg);
            };
            // With TLS 1.3 a client learns that the server refused its certificate only at
            // its first call, and then as an alert, a closed stream or a cancelled call.
            if matches!(remote, Remote::Tcp(_)) {
                text.push_str(
                    " (a daemon with mutual TLS refuses clients without a certificate signed by its --tls-client-ca: give --tls-cert and --tls-key)",
                );
            }
            DaemonError::Connect(text)
        }
    }
}

/// Where one data source's data is written: a stream of events, or arrays.
enum Output {
    Events(Box<dyn Sink>),
    Arrays(Box<dyn ArraySink>),
}

/// Prints a run's events as a local `ig run` does: stdout for data, stderr for the rest.
pub struct Render {
    mode: OutputMode,
    fields: FieldSelection,
    sinks: Vec<Option<Output>>,
    text: Option<std::io::BufWriter<std::io::Stdout>>,
    /// Decoded into in place, event after event.
    event: crate::event::Event,
    /// Events written (decoded here; JSON lines the daemon wrote are copied, not counted).
    pub events: u64,
    error: Option<std::io::Error>,
}

/// What the stream does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The run ended (with its error, if any) or stdout closed.
    Done(Option<String>),
}

impl Render {
    pub fn new(mode: OutputMode, fields: FieldSelection) -> Self {
        Render {
            mode,
            fields,
            sinks: Vec::new(),
            text: None,
            event: crate::event::Event { values: Vec::new() },
            events: 0,
            error: None,
        }
    }

    pub fn handle(&mut self, ev: proto::RunEvent) -> Result<Flow, DaemonError> {
        let Some(kind) = ev.kind else {
            return Ok(Flow::Continue);
        };
        match kind {
            Kind::Datasource(ds) => {
                let (schema, order) = datasource_from_proto(&ds);
                let columns = columns_for(&schema, order, &self.fields, self.mode)
                    .map_err(DaemonError::Invalid)?;
                let out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
                let id = ds.id as usize;
                // Data sources are a gadget's tracers: a handful. A larger id is a broken peer.
                if id >= MAX_DATASOURCES {
                    return Err(DaemonError::Internal(format!(
                        "data source id {id} out of range"
                    )));
                }
                if self.sinks.len() <= id {
                    self.sinks.resize_with(id + 1, || None);
                }
                self.sinks[id] = Some(if ds.array {
                    use std::io::IsTerminal;
                    // Clearing is for a person watching: never into a pipe or a file.
                    let clear = ds.clear_screen && std::io::stdout().is_terminal();
                    Output::Arrays(Box::new(ArrayWriter::new(
                        self.mode, &schema, columns, clear, out,
                    )))
                } else {
                    Output::Events(make_sink(self.mode, &schema, columns, out))
                });
            }
            Kind::Array(bytes) => {
                let malformed =
                    |e: String| DaemonError::Internal(format!("a malformed array: {e}"));
                let ds = super::wire::batch_datasource(&bytes).map_err(malformed)?;
                let Some(Some(Output::Arrays(sink))) = self.sinks.get_mut(ds as usize) else {
                    return Err(DaemonError::Internal(format!(
                        "an array of data source {ds} before its schema, or of one that is not an array"
                    )));
                };
                let mut rows = Vec::new();
                super::wire::decode_batch(&bytes, &mut self.event, |e| {
                    rows.push(e.clone());
                    true
                })
                .map_err(malformed)?;
                match sink.array(&rows) {
                    Ok(true) => self.events += rows.len() as u64,
                    Ok(false) => return Ok(Flow::Done(None)),
                    Err(e) => return self.output_error(e),
                }
            }
            Kind::Events(bytes) => {
                let malformed = |e: String| DaemonError::Internal(format!("a malformed event batch: {e}"));
                let ds = super::wire::batch_datasource(&bytes).map_err(malformed)?;
                let Some(Some(Output::Events(sink))) = self.sinks.get_mut(ds as usize) else {
                    return Err(DaemonError::Internal(format!(
                        "events of data source {ds} before its schema, or of an array one"
                    )));
                };
                let (mut stop, mut failed, mut written) = (false, None, 0);
                super::wire::decode_batch(&bytes, &mut self.event, |e| match sink.event(e) {
                    Ok(true) => {
                        written += 1;
                        true
                    }
                    Ok(false) => {
                        stop = true;
                        false
                    }
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                })
                .map_err(malformed)?;
                self.events += written;
                if let Some(e) = failed {
                    return self.output_error(e);
                }
                if stop {
                    return Ok(Flow::Done(None));
                }
                if let Err(e) = sink.flush() {
                    return self.output_error(e);
                }
            }
            Kind::JsonLines(lines) => {
                let out = self
                    .text
                    .get_or_insert_with(|| std::io::BufWriter::new(std::io::stdout()));
                if let Err(e) = out.write_all(&lines).and_then(|_| out.flush()) {
                    return self.output_error(e);
                }
            }
            Kind::Lost(l) => {
                if let Some(Some(Output::Events(sink))) = self.sinks.get_mut(l.datasource as usize) {
                    if let Err(e) = sink.lost(&l.map, l.count) {
                        return self.output_error(e);
                    }
                }
            }
            Kind::Notice(n) => eprintln!("ig: {}", n.text),
            Kind::Text(bytes) => {
                let out = self
                    .text
                    .get_or_insert_with(|| std::io::BufWriter::new(std::io::stdout()));
                if let Err(e) = out.write_all(&bytes).and_then(|_| out.flush()) {
                    return self.output_error(e);
                }
            }
            Kind::Missed(m) => eprintln!(
                "ig: warning: {} events missed: this client read too slowly (the daemon queues at most {} events per client)",
                m.count,
                super::hub::CLIENT_BUFFER_EVENTS
            ),
            Kind::History(h) if !h.live && self.arrays_only() => eprintln!(
                "ig: the instance's most recent array ({} rows) comes first, then live ones",
                h.events
            ),
            Kind::History(h) if !h.live => eprintln!(
                "ig: the instance's {} most recent events it kept come first, then live events",
                h.events
            ),
            Kind::History(_) => eprintln!("ig: live events follow"),
            Kind::End(end) => {
                return Ok(Flow::Done((!end.error.is_empty()).then_some(end.error)));
            }
        }
        Ok(Flow::Continue)
    }

    /// Whether every data source announced is an array one.
    fn arrays_only(&self) -> bool {
        let mut sinks = self.sinks.iter().flatten().peekable();
        sinks.peek().is_some() && sinks.all(|s| matches!(s, Output::Arrays(_)))
    }

    fn output_error(&mut self, e: std::io::Error) -> Result<Flow, DaemonError> {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            self.error = Some(e);
        }
        Ok(Flow::Done(None))
    }

    /// Flushes every sink; an output error (other than a closed pipe) is returned.
    pub fn finish(&mut self) -> Result<(), std::io::Error> {
        for sink in self.sinks.iter_mut().flatten() {
            let done = match sink {
                Output::Events(s) => s.finish(),
                Output::Arrays(s) => s.finish(),
            };
            if let Err(e) = done {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    self.error.get_or_insert(e);
                }
            }
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
