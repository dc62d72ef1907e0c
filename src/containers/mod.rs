//! Container awareness: which container an event came from.
//!
//! # Layout
//! - [`container`] — the `Container` record, `RuntimeKind`, `K8sMeta`.
//! - [`runtime`] — the `RuntimeClient` interface, `RuntimeConfig`, connecting the
//!   selected runtimes (skip with a notice, or fail when explicit).
//! - `docker`, `containerd` — the two clients (bollard, containerd-client).
//! - [`collection`] — `ContainerCollection`, the live set indexed by mount
//!   namespace, with a bounded list of recently removed containers.
//! - `watch` — background task per runtime applying its events, reconnecting
//!   and re-listing when the daemon restarts.
//! - [`procfs`] — mount namespace of a pid, container id from its cgroup path.
//! - `timestamp` — RFC 3339 times (Docker's `StartedAt`).
//! - [`error`] — `ContainerError`.
//!
//! A container's identity in the kernel is its mount namespace inode
//! (`/proc/<pid>/ns/mnt`); BPF reads the same number from
//! `task->nsproxy->mnt_ns->ns.inum`.

pub mod collection;
pub mod container;
mod containerd;
mod docker;
pub mod error;
pub mod procfs;
pub mod runtime;
mod timestamp;
mod watch;

pub use collection::{ContainerCollection, ContainerEvent, GONE_CAPACITY};
pub use container::{Container, K8sMeta, RuntimeKind};
pub use error::ContainerError;
pub use runtime::{RuntimeClient, RuntimeConfig, RuntimeEvent};
