//! `ContainerError`: every failure of the containers module, naming the
//! runtime and socket it came from.

use std::path::PathBuf;

use super::container::RuntimeKind;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("unknown container runtime {0:?} (known: docker, containerd, podman)")]
    UnknownRuntime(String),

    #[error("{runtime}: socket {} not found", socket.display())]
    SocketMissing {
        runtime: RuntimeKind,
        socket: PathBuf,
    },

    #[error("{runtime}: no answer on {} within {secs}s", socket.display())]
    Timeout {
        runtime: RuntimeKind,
        socket: PathBuf,
        secs: u64,
    },

    #[error("{runtime}: {} is not a socket (it is {kind})", socket.display())]
    NotASocket {
        runtime: RuntimeKind,
        socket: PathBuf,
        kind: &'static str,
    },

    #[error("{runtime}: cannot connect to {}: {reason}", socket.display())]
    Unreachable {
        runtime: RuntimeKind,
        socket: PathBuf,
        reason: String,
    },

    #[error("{runtime}: {} does not speak the Docker Engine API: {reason}", socket.display())]
    NotDockerApi {
        runtime: RuntimeKind,
        socket: PathBuf,
        reason: String,
    },

    #[error("{runtime} ({}): {op}: no answer within {secs}s", socket.display())]
    RequestTimeout {
        runtime: RuntimeKind,
        socket: PathBuf,
        op: &'static str,
        secs: u64,
    },

    #[error("{runtime} ({}): {op}: the answer is larger than {limit} bytes; refusing it", socket.display())]
    TooLarge {
        runtime: RuntimeKind,
        socket: PathBuf,
        op: &'static str,
        limit: usize,
    },

    #[error("{runtime} ({}): {op}: {reason}", socket.display())]
    Engine {
        runtime: RuntimeKind,
        socket: PathBuf,
        op: &'static str,
        reason: String,
    },

    #[error("containerd ({}): cannot connect: {source}", socket.display())]
    ContainerdConnect {
        socket: PathBuf,
        #[source]
        source: Box<tonic::transport::Error>,
    },

    #[error("containerd ({}): {op}: {}", socket.display(), source.message())]
    Containerd {
        socket: PathBuf,
        op: &'static str,
        #[source]
        source: Box<tonic::Status>,
    },

    #[error("containerd ({}): invalid namespace name {namespace:?}", socket.display())]
    BadNamespace { socket: PathBuf, namespace: String },

    #[error("{runtime} ({}): event stream ended", socket.display())]
    StreamEnded {
        runtime: RuntimeKind,
        socket: PathBuf,
    },
}

impl ContainerError {
    pub(super) fn containerd(socket: &std::path::Path, op: &'static str, e: tonic::Status) -> Self {
        ContainerError::Containerd {
            socket: socket.to_path_buf(),
            op,
            source: Box::new(e),
        }
    }
}
