//! The error type of gadget distribution: registries, credentials, archives, signatures and the
//! allow-list. Every message names the registry, reference, digest or file involved.

use std::path::PathBuf;

use super::deadline::Missed;
use super::OciError;

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error(transparent)]
    Store(#[from] OciError),
    #[error("registry {registry}: cannot connect ({detail}){hint}")]
    Network {
        registry: String,
        detail: String,
        hint: String,
    },
    #[error("registry {registry}: {what}: {missed}")]
    Timeout {
        registry: String,
        what: String,
        missed: Missed,
    },
    #[error("{name}={value:?}: {reason}")]
    Config {
        name: String,
        value: String,
        reason: String,
    },
    #[error(
        "registry {registry}: {what} requires authentication: log in with `ig login {registry}`"
    )]
    AuthRequired { registry: String, what: String },
    #[error("registry {registry}: authentication failed for {what} as user {user:?} (401): wrong user name or password? log in again with `ig login {registry}`")]
    AuthFailed {
        registry: String,
        what: String,
        user: String,
    },
    #[error("registry {registry}: access to {what} denied (403){detail}")]
    Forbidden {
        registry: String,
        what: String,
        detail: String,
    },
    #[error("registry {registry}: {what} not found (404){detail}")]
    NotFound {
        registry: String,
        what: String,
        detail: String,
    },
    #[error("registry {registry}: {what}: unexpected HTTP status {status}{detail}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        detail: String,
    },
    #[error("registry {registry}: {what}: content does not match its digest: expected {expected}, got {actual}; refusing it")]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("registry {registry}: {what}: {reason}")]
    Protocol {
        registry: String,
        what: String,
        reason: String,
    },
    #[error("credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
    #[error("registry {registry}: {what} {mismatch}; refusing it")]
    Content {
        registry: String,
        what: String,
        mismatch: super::content::Mismatch,
    },
    #[error("archive {path}: {reason}")]
    Archive { path: String, reason: String },
    #[error("archive {path} is {format}-compressed: {tool} it first")]
    ArchiveCompressed {
        path: String,
        format: &'static str,
        tool: &'static str,
    },
    #[error("archive {path} is truncated: {detail}")]
    ArchiveTruncated { path: String, detail: String },
    #[error("archive {path}: image {reference} needs blob {digest}, which is missing from the archive (and from the local store)")]
    ArchiveMissingBlob {
        path: String,
        reference: String,
        digest: String,
    },
    #[error("archive {path}: tag {tag} appears twice, for {first} and {second}: refusing the ambiguous archive")]
    ArchiveDuplicateTag {
        path: String,
        tag: String,
        first: String,
        second: String,
    },
    #[error(transparent)]
    Output(#[from] crate::fsutil::OutputPathError),
    /// `error` is not a `source`: the message already holds it, and the CLI prints sources
    /// after the message.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("image {reference} ({digest}) is not signed: no signature {signature} in the local store (keys tried: {keys})")]
    Unsigned {
        reference: String,
        digest: String,
        signature: String,
        keys: String,
    },
    #[error("image {reference} ({digest}): no valid signature for any of the keys tried ({keys}): {reason}")]
    BadSignature {
        reference: String,
        digest: String,
        keys: String,
        reason: String,
    },
    #[error("image {reference}: signature verification needs a public key (--public-key FILE, or a key file in {config}); pass --verify-image=false to run unverified images")]
    NoKeys { reference: String, config: String },
    #[error(
        "gadget {reference} is not allowed: it matches none of the allowed gadgets ({patterns})"
    )]
    NotAllowed { reference: String, patterns: String },
    #[error("image {reference} is not in the local store and the pull policy is `never`")]
    NotLocal { reference: String },
}

impl DistError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DistError {
        let path = path.into();
        move |error| DistError::Io { path, error }
    }
}
