//! Running a gadget: a validated configuration, then the pipeline
//! decode → enrich → filter → output over the gadget's ring buffers.

pub mod array_opts;
mod arrays;
mod config;
mod error;
mod outputs;
mod pipeline;
mod runner;
pub mod selection;
pub mod traceloop;
mod verify;

pub use arrays::array_schema as array_schema_for;
pub use config::RunConfig;
pub use error::RunError;
pub use outputs::{columns_for, Outputs, Terminal};
pub use pipeline::build_schema as schema_for;
pub use runner::{prepare, run, ConnectContainers, Containers, Prepared};
pub use verify::verified_digest;
