//! The interface every runtime client implements, the per-runtime
//! configuration, and connecting the selected runtimes.
//!
//! Adding a runtime (CRI-O) = one file implementing [`RuntimeClient`], one [`RuntimeKind`]
//! variant, one arm in [`connect`]. podman needed no file: it speaks Docker's API.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use super::container::{Container, RuntimeKind};
use super::containerd::ContainerdClient;
use super::docker::DockerClient;
use super::error::ContainerError;

/// How long connecting to (and the first answer of) a runtime may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One runtime to use, as selected by the caller (`--runtimes`, socket flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub kind: RuntimeKind,
    pub socket_path: PathBuf,
    /// Named by the user: failing to connect is an error, not a notice.
    pub explicit: bool,
}

impl RuntimeConfig {
    /// The runtime on its default socket (the first of its usual places that exists, under
    /// `HOST_ROOT` when set), not explicitly requested.
    pub fn new(kind: RuntimeKind) -> Self {
        RuntimeConfig {
            kind,
            socket_path: kind.default_socket_path(),
            explicit: false,
        }
    }

    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket_path = path.into();
        self
    }

    pub fn explicit(mut self, explicit: bool) -> Self {
        self.explicit = explicit;
        self
    }

    /// Every known runtime on its default socket, none explicit.
    pub fn defaults() -> Vec<RuntimeConfig> {
        RuntimeKind::ALL
            .into_iter()
            .map(RuntimeConfig::new)
            .collect()
    }
}

/// A lifecycle change a runtime announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// The container's init process runs: inspect it.
    Started {
        namespace: Option<String>,
        id: String,
        /// Name and image when the event carries them (Docker's do): enough to name a
        /// container that is gone before it could be inspected.
        name: Option<String>,
        image: Option<String>,
        /// The init process, when the event carries it (containerd's TaskStart does): what
        /// matches the events of a container gone before it could be inspected.
        pid: Option<u32>,
    },
    /// The container's init process exited or the container was deleted.
    Stopped {
        namespace: Option<String>,
        id: String,
    },
}

/// What the collection needs from a container runtime. Object safe, so the
/// collection holds a `Vec<Arc<dyn RuntimeClient>>`.
pub trait RuntimeClient: Send + Sync {
    fn kind(&self) -> RuntimeKind;

    fn socket_path(&self) -> &Path;

    /// Every running container.
    fn list(&self) -> BoxFuture<'_, Result<Vec<Container>, ContainerError>>;

    /// One container by id; `Ok(None)` when unknown here or not running.
    /// `namespace` narrows a containerd lookup to one namespace.
    /// `pid_hint`: a process known to run in the container; used as its pid
    /// while the runtime is still starting it and reports no pid yet (the
    /// entrypoint already runs when Docker still says "created").
    fn inspect<'a>(
        &'a self,
        id: &'a str,
        namespace: Option<&'a str>,
        pid_hint: Option<u32>,
    ) -> BoxFuture<'a, Result<Option<Container>, ContainerError>>;

    /// Lifecycle events from now on. The subscription is made when the
    /// stream is first polled; the stream ends (or yields an error) when the
    /// connection breaks.
    /// Any container the runtime knows by id, running or not: the name and image of one that
    /// already exited (pid and mount namespace 0).
    fn describe<'a>(
        &'a self,
        id: &'a str,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<Container>, ContainerError>>;

    fn events(&self) -> BoxStream<'static, Result<RuntimeEvent, ContainerError>>;
}

/// Connects to one runtime and checks that it answers.
/// `hide_docker_namespace`: containerd skips Docker's own namespace (`moby`)
/// because Docker is used too and lists those containers itself.
pub async fn connect(
    config: &RuntimeConfig,
    hide_docker_namespace: bool,
) -> Result<Arc<dyn RuntimeClient>, ContainerError> {
    if !config.socket_path.exists() {
        return Err(ContainerError::SocketMissing {
            runtime: config.kind,
            socket: config.socket_path.clone(),
        });
    }
    if let Ok(meta) = std::fs::metadata(&config.socket_path) {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let kind = if t.is_socket() {
            None
        } else if t.is_file() {
            Some("a regular file")
        } else if t.is_dir() {
            Some("a directory")
        } else if t.is_fifo() {
            Some("a FIFO")
        } else if t.is_char_device() || t.is_block_device() {
            Some("a device")
        } else {
            Some("not a socket")
        };
        if let Some(kind) = kind {
            return Err(ContainerError::NotASocket {
                runtime: config.kind,
                socket: config.socket_path.clone(),
                kind,
            });
        }
    }
    let connecting = async {
        Ok::<Arc<dyn RuntimeClient>, ContainerError>(match config.kind {
            RuntimeKind::Docker => Arc::new(DockerClient::connect(&config.socket_path).await?),
            RuntimeKind::Podman => {
                Arc::new(DockerClient::connect_as(&config.socket_path, RuntimeKind::Podman).await?)
            }
            RuntimeKind::Containerd => {
                let hidden = if hide_docker_namespace {
                    vec![super::containerd::DOCKER_NAMESPACE.to_string()]
                } else {
                    Vec::new()
                };
                Arc::new(ContainerdClient::connect(&config.socket_path, hidden).await?)
            }
        })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| ContainerError::Timeout {
            runtime: config.kind,
            socket: config.socket_path.clone(),
            secs: CONNECT_TIMEOUT.as_secs(),
        })?
}

/// Connects every configured runtime (Docker first, so containerd knows
/// whether to hide Docker's namespace). A runtime that cannot be reached
/// is skipped with a one-line warning unless it is `explicit`.
pub async fn connect_all(
    configs: &[RuntimeConfig],
) -> Result<(Vec<Arc<dyn RuntimeClient>>, Vec<String>), ContainerError> {
    let mut ordered: Vec<&RuntimeConfig> = configs.iter().collect();
    ordered.sort_by_key(|c| c.kind);
    let mut clients: Vec<Arc<dyn RuntimeClient>> = Vec::new();
    let mut warnings = Vec::new();
    for config in ordered {
        let docker_used = clients.iter().any(|c| c.kind() == RuntimeKind::Docker);
        match connect(config, docker_used).await {
            Ok(client) => clients.push(client),
            Err(e) if config.explicit => return Err(e),
            Err(ContainerError::SocketMissing { .. }) if config.kind.quiet_when_missing() => {}
            Err(e) => warnings.push(format!("{e}; skipping {}", config.kind)),
        }
    }
    Ok((clients, warnings))
}
