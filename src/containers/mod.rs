//! Container awareness: which container an event came from.
//!
//! # Layout
//! - [`container`] — the `Container` record, `RuntimeKind`, `K8sMeta`.
//! - [`runtime`] — the `RuntimeClient` interface, `RuntimeConfig`, connecting the
//!   selected runtimes (skip with a notice, or fail when explicit).
//! - `docker`, `containerd` — the two clients (`engine_api` with bollard's models,
//!   containerd-client); `engine_api` bounds every Docker answer in size and time. podman is
//!   the Docker client on podman's Docker-compatible socket.
//! - [`collection`] — `ContainerCollection`, the live set indexed by mount
//!   namespace, with a bounded list of recently removed containers.
//! - [`mntns`] — `MntnsKey`, a mount namespace's inode and never-reused id.
//! - `watch` — background task per runtime applying its events, reconnecting
//!   and re-listing when the daemon restarts.
//! - [`procfs`] — mount namespace of a pid, container id from its cgroup path.
//! - `timestamp` — RFC 3339 times (Docker's `StartedAt`).
//! - [`error`] — `ContainerError`.
//!
//! A container's identity in the kernel is its mount namespace: the inode
//! (`/proc/<pid>/ns/mnt`, `task->nsproxy->mnt_ns->ns.inum`), which the kernel
//! reuses, and the id (`NS_GET_MNTNS_ID`), which it does not.

pub mod collection;
pub mod container;
mod containerd;
mod docker;
mod engine_api;
pub mod error;
pub mod mntns;
pub mod procfs;
pub mod runtime;
mod timestamp;
mod watch;

pub use collection::{ContainerCollection, ContainerEvent, GONE_CAPACITY};

/// The pure parsing steps of the runtime clients, for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod parse {
    pub use super::containerd::to_event as containerd_event;
    pub use super::docker::describe_inspect as docker_container;
    pub use super::timestamp::parse_rfc3339;
}
pub use container::{Container, K8sMeta, RuntimeKind};
pub use error::ContainerError;
pub use mntns::{MntnsKey, MntnsMap};
pub use runtime::{RuntimeClient, RuntimeConfig, RuntimeEvent};

/// The runtimes used when none are named (`--runtimes`): podman only when its socket exists
/// (see [`RuntimeKind::quiet_when_missing`]).
pub const DEFAULT_RUNTIMES: &str = "docker,containerd,podman";
