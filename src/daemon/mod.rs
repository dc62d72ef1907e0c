//! The local daemon (`ig daemon`) and its clients.
//!
//! * [`server`]: `serve(listeners, config, shutdown)`; [`socket`]: the Unix socket's access.
//! * `service`: the gRPC API of `proto/daemon.proto`; `instances`: detached instances and their
//!   persisted specs; `runs`: one run's thread; [`hub`]: a run's events fanned out to clients.
//! * [`client`]: connecting (Unix socket, TCP with mutual TLS) and printing a run's events the
//!   way a local run prints them.

pub mod client;
mod convert;
mod error;
pub mod hub;
mod images;
mod instances;
mod lines_pipe;
mod metrics;
mod outfile;
mod outputs;
pub mod passfd;
mod runs;
pub mod server;
mod service;
pub mod socket;
mod traceloop;
/// Public for the fuzz targets in `fuzz/` only.
#[doc(hidden)]
pub mod wire;

/// The generated gRPC types (`proto/daemon.proto`).
pub mod proto {
    tonic::include_proto!("ig.daemon.v1");
}

pub use error::DaemonError;
pub use images::DaemonImagePolicy;
pub use server::{serve, DaemonConfig, Listener, ServerTls};
pub use traceloop::TraceloopConfig;

/// The daemon's default Unix socket.
pub const DEFAULT_SOCKET: &str = "/var/run/ig/ig.socket";
/// The daemon's default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ig";
