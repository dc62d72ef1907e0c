//! `ig`: a container-aware eBPF gadget runtime.
//!
//! # Layout
//!
//! Data flows one way:
//!
//! ```text
//! oci (store) → gadget (spec, loader) → ring buffer → gadget::decode → operators → output
//! ```
//!
//! * [`oci`]: image references, the local OCI-layout store, the gadget image format.
//! * [`gadget`]: `gadget.yaml`, BTF analysis, the compiler driver, the loader, the decoder.
//! * [`operators`]: enrichment (timestamps, users, errno, containers) and field selection.
//! * [`output`]: columns, JSON and YAML sinks.
//! * [`run`]: a validated run configuration and the loop that wires the stages.
//! * [`containers`]: Docker and containerd clients and the live container collection.
//! * [`traceloop`]: syscall tables and decoding for the traceloop flight recorder.
//! * [`builtin`]: the gadgets embedded at build time.
//! * [`fsutil`]: writing a path the user named (regular file, FIFO, device or symlink).
//! * [`hostroot`]: where the host's sockets, users and processes are when `ig` runs in a
//!   container with the host's root under `HOST_ROOT`.
//!
//! The `ig` binary (`src/main.rs`, `src/cli/`) is one thin client of this library.

pub mod builtin;
pub mod containers;
pub mod daemon;
pub mod event;
pub mod fsutil;
pub mod gadget;
pub mod hostroot;
pub mod oci;
pub mod operators;
pub mod output;
pub mod run;
pub mod traceloop;
