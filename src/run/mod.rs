//! Running a gadget: a validated configuration, then the pipeline
//! decode → enrich → filter → output over the gadget's ring buffers.

mod config;
mod error;
mod pipeline;
mod runner;
pub mod selection;
mod traceloop;

pub use config::RunConfig;
pub use error::RunError;
pub use pipeline::build_schema as schema_for;
pub use runner::{prepare, run, ConnectContainers, Containers, Prepared};
