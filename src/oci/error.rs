use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("invalid image reference {reference:?}: {reason}")]
    Reference { reference: String, reason: String },
    #[error("image {0} not found in the local store (build it with `ig image build`, or pull it)")]
    NotFound(String),
    #[error("image {reference}: no manifest for platform linux/{arch}")]
    NoPlatform { reference: String, arch: String },
    #[error("blob {digest} in the local store is corrupted: its content hashes to {actual}")]
    Corrupted { digest: String, actual: String },
    #[error("blob {0} is missing from the local store")]
    MissingBlob(String),
    #[error("image {reference}: {reason}")]
    Invalid { reference: String, reason: String },
    #[error("local store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("local store {path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl OciError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> OciError {
        let path = path.into();
        move |source| OciError::Io { path, source }
    }
}
