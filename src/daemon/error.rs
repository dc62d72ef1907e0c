use crate::run::RunError;

/// What the daemon and its clients report. On the wire each becomes a gRPC status whose
/// message is this text.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The image could not be found, pulled, allowed or verified.
    #[error("{0}")]
    Image(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Starting the daemon: its socket, listener, certificates or privileges.
    #[error("{0}")]
    Setup(String),
    /// A client could not reach the daemon or lost it.
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Internal(String),
}

impl DaemonError {
    pub fn io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> DaemonError {
        let path = path.to_string();
        move |source| DaemonError::Io { path, source }
    }
}

impl From<DaemonError> for tonic::Status {
    fn from(e: DaemonError) -> Self {
        let msg = e.to_string();
        match e {
            DaemonError::Invalid(_) => tonic::Status::invalid_argument(msg),
            DaemonError::NotFound(_) => tonic::Status::not_found(msg),
            DaemonError::Exists(_) => tonic::Status::already_exists(msg),
            DaemonError::Image(_) => tonic::Status::failed_precondition(msg),
            _ => tonic::Status::internal(msg),
        }
    }
}
