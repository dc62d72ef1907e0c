//! Gadgets: `gadget.yaml`, BTF analysis of the object (tracers, params, event layouts), the
//! compiler driver for `ig image build`, the kernel loader and the event decoder.

pub mod btf;
pub mod build;
pub mod compile;
pub mod decode;
pub mod elf;
mod error;
pub mod iters;
pub mod loader;
pub mod metadata;
pub mod param_keys;
pub mod spec;

pub use error::GadgetError;
pub use metadata::Metadata;
pub use spec::GadgetSpec;
