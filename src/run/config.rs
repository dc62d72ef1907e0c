use std::time::Duration;

use crate::oci::Reference;
use crate::operators::fields::FieldSelection;
use crate::output::OutputMode;

/// Everything `ig run` needs, validated before anything touches the kernel.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub image: Reference,
    pub output: OutputMode,
    pub fields: FieldSelection,
    pub timeout: Option<Duration>,
    /// Show processes that run outside containers.
    pub host: bool,
    /// Only these containers (by name); empty: every container.
    pub containers: Vec<String>,
    /// Gadget parameters: flag key → value as typed.
    pub params: Vec<(String, String)>,
    /// Stop after this many events.
    pub max_events: Option<u64>,
    /// The index digest that was verified: loading anything else is refused.
    pub expected_digest: Option<String>,
    /// Flight-recorder gadgets: only these syscalls (names).
    pub syscall_filters: Vec<String>,
    /// `--filter` expressions (`operators::filter`): every one must hold.
    pub filters: Vec<String>,
    /// Map- and BPF-iterator gadgets: how often to read, how many times, sort and cut.
    pub arrays: super::array_opts::ArrayOptions,
}
