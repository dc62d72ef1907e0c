//! The flight-recorder run mode, for any gadget with a `GADGET_RECORDER` (`bpf/gadget/recorder.h`;
//! traceloop is one): the BPF side writes every syscall of the selected containers into a
//! bounded, overwriting buffer per container; nothing streams. When the run stops, each
//! container's window is read, decoded and printed, also for containers that exited during the
//! run. The maps are the header's, found by their fixed names; the records map and the record
//! struct are the gadget's, named by its marker; the record's fields are found by their typedefs
//! ([`crate::traceloop::RecordLayout`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, MapFlags};

use super::outputs::Outputs;
use super::runner::ConnectContainers;
use super::{RunConfig, RunError};
use crate::containers::{Container, ContainerCollection, MntnsKey};
use crate::gadget::loader::LoadedGadget;
use crate::gadget::spec::recorder_api;
use crate::gadget::GadgetSpec;
use crate::oci::image::GadgetImage;
use crate::traceloop::record::parse_records;
use crate::traceloop::RecordLayout;

mod recorder;
mod render;
mod scan;

pub use recorder::{Recorder, Trace};
pub use render::write_trace;

pub(super) use recorder_api::{CGROUPS, FREE_SLOTS, HEADS, SLOTS, SYSCALL_FILTER};
/// `gadget_recorder_slots` value of a namespace the run does not record
/// (GADGET_RECORDER_CLOSED).
const CLOSED: u32 = u32::MAX;
/// Closed namespaces kept in `gadget_recorder_slots` besides the open ones; dead ones are swept.
pub(super) const CLOSED_KEPT: u32 = 1024;
/// `struct gadget_recorder_cgroup`: `{ u64 mntns_id; char parent[64]; char leaf[96]; }`.
const CGROUP_SIZE: usize = 168;
const LOST: [&str; 2] = [recorder_api::LOST_CONTAINERS, recorder_api::LOST_RECORDS];

/// The gadget's part of the recorder: its records map, record layout and buffer size.
#[derive(Debug, Clone)]
pub(super) struct Records {
    /// The gadget's name for the recorder (`GADGET_RECORDER(name, ...)`): titles its traces.
    pub(super) name: String,
    pub(super) map: String,
    pub(super) layout: RecordLayout,
    pub(super) per_container: u32,
}

/// How often new buffers are looked at, to name their container while its processes live.
const SCAN_INTERVAL: Duration = Duration::from_millis(20);
/// How long, and how often, an unnamed buffer's processes are asked for their container.
pub(super) const RESOLVE_FOR: Duration = Duration::from_secs(3);
pub(super) const RETRY_EVERY: Duration = Duration::from_millis(100);
/// Records of a new buffer whose pids are tried.
const PIDS_FROM: u32 = 64;

pub(super) fn map_err(map: &str, e: impl std::fmt::Display) -> RunError {
    RunError::Gadget(crate::gadget::GadgetError::Map {
        map: map.to_string(),
        reason: e.to_string(),
    })
}

pub(super) fn param_u32(spec: &GadgetSpec, config: &RunConfig, var: &str) -> Result<u32, RunError> {
    let p = spec
        .params
        .iter()
        .find(|p| p.var == var)
        .ok_or_else(|| RunError::Unsupported {
            gadget: spec.metadata.name.clone(),
            reason: format!("no parameter {var} (include <gadget/recorder.h>)"),
        })?;
    let value = config
        .params
        .iter()
        .find(|(k, _)| *k == p.key)
        .map(|(_, v)| v.as_str())
        .unwrap_or(&p.default);
    value.parse().ok().filter(|v: &u32| *v > 0).ok_or_else(|| {
        RunError::Config(format!(
            "--{} must be a positive number, not {value:?}",
            p.key
        ))
    })
}

pub(super) fn u64_at(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    u64::from_le_bytes(raw)
}

pub fn run(
    image: &GadgetImage,
    spec: &GadgetSpec,
    config: &RunConfig,
    containers: ConnectContainers<'_>,
    stop: &AtomicBool,
    outputs: &dyn Outputs,
) -> Result<u64, RunError> {
    let mut recorder = Recorder::load(image, spec, config)?;
    recorder.start(config, containers()?)?;
    outputs.attached();
    outputs.notice(
        "recording syscalls; the history is printed when the run stops (Ctrl-C or --timeout)",
    );
    let started = Instant::now();
    loop {
        std::thread::sleep(SCAN_INTERVAL);
        recorder.tick()?;
        let timed_out = config.timeout.is_some_and(|t| started.elapsed() >= t);
        if timed_out || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    recorder.detach();
    // Give resolutions started in the last instants a moment to land.
    std::thread::sleep(Duration::from_millis(200));
    recorder.poll_selection();
    let written = recorder.dump(config.output, outputs)?;
    report_lost(recorder.loaded(), outputs);
    Ok(written)
}

/// A mount namespace's buffer. Inodes are reused as soon as a namespace dies; BPF keys the
/// buffers by inode and namespace id, so two namespaces with one inode never share one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    mntns: u64,
    ns_id: u64,
    slot: u32,
    /// The slot's head when this namespace got it: older records are a previous owner's.
    first_seq: u64,
}

pub(super) type NsKey = MntnsKey;

impl Slot {
    pub(super) fn key(&self) -> NsKey {
        MntnsKey::new(self.mntns, self.ns_id)
    }

    pub(super) fn closed(&self) -> bool {
        self.slot == CLOSED
    }
}

/// `struct gadget_mntns_key`.
pub(super) fn key_bytes(key: NsKey) -> [u8; 16] {
    key.to_bpf_bytes()
}

pub(super) fn slots(loaded: &LoadedGadget) -> Result<Vec<Slot>, RunError> {
    let map = loaded.map(SLOTS)?;
    let mut out = Vec::new();
    for key in map.keys() {
        // key: struct gadget_mntns_key; value: struct gadget_recorder_slot
        if let (16, Ok(Some(v))) = (key.len(), map.lookup(&key, MapFlags::ANY)) {
            if v.len() >= 16 {
                out.push(Slot {
                    mntns: u64_at(&key[..8]),
                    ns_id: u64_at(&key[8..]),
                    slot: u64_at(&v[..4]) as u32,
                    first_seq: u64_at(&v[8..16]),
                });
            }
        }
    }
    Ok(out)
}

pub(super) fn read_slot(
    loaded: &LoadedGadget,
    records: &Records,
    slot: u32,
) -> Result<Vec<u8>, RunError> {
    let map = loaded.map(&records.map)?;
    let (size, per_container) = (records.layout.size, records.per_container);
    let first = slot as u64 * per_container as u64;
    let mut buf = Vec::with_capacity(per_container as usize * size);
    for i in 0..per_container as u64 {
        let key = ((first + i) as u32).to_le_bytes();
        match map.lookup(&key, MapFlags::ANY) {
            Ok(Some(v)) if v.len() == size => buf.extend_from_slice(&v),
            _ => buf.resize(buf.len() + size, 0),
        }
    }
    Ok(buf)
}

/// Distinct pids among the newest records of a slot: processes most likely still alive and
/// already moved into the container's cgroup.
pub(super) fn slot_pids(
    loaded: &LoadedGadget,
    records: &Records,
    slot: u32,
) -> Result<Vec<u32>, RunError> {
    let per_container = records.per_container;
    let head = loaded
        .map(HEADS)?
        .lookup(&slot.to_le_bytes(), MapFlags::ANY)
        .ok()
        .flatten()
        .map(|v| u64_at(&v))
        .unwrap_or(0);
    let map = loaded.map(&records.map)?;
    let first = slot as u64 * per_container as u64;
    let mut pids = Vec::new();
    for back in 1..=(PIDS_FROM as u64).min(head) {
        let key = ((first + (head - back) % per_container as u64) as u32).to_le_bytes();
        let Some(v) = map.lookup(&key, MapFlags::ANY).ok().flatten() else {
            continue;
        };
        let parsed = parse_records(&records.layout, &v).ok();
        if let Some(r) = parsed.and_then(|r| r.into_iter().next()) {
            if !pids.contains(&r.pid) {
                pids.push(r.pid);
            }
        }
    }
    Ok(pids)
}

fn report_lost(loaded: &LoadedGadget, outputs: &dyn Outputs) {
    for name in LOST {
        let count = loaded.bss_u64(name).unwrap_or(0);
        if count > 0 {
            let what = if name == LOST[0] {
                "containers got no buffer (raise --max-containers)"
            } else {
                "records were dropped"
            };
            outputs.notice(&format!("warning: {count} {what}"));
        }
    }
}

/// The container of a slot from the cgroup BPF noted, for one that exited before its
/// runtime could be asked about its processes.
pub(super) fn container_by_cgroup(
    loaded: &LoadedGadget,
    collection: Option<&ContainerCollection>,
    handle: Option<&tokio::runtime::Handle>,
    slot: u32,
    mntns: u64,
) -> Option<Arc<Container>> {
    let (collection, handle) = (collection?, handle?);
    let value = loaded
        .map(CGROUPS)
        .ok()?
        .lookup(&slot.to_le_bytes(), MapFlags::ANY)
        .ok()??;
    if value.len() < CGROUP_SIZE || u64_at(&value[..8]) != mntns {
        return None;
    }
    let path = crate::gadget::loader::cgroup_path(&value[8..72], &value[72..168])?;
    let line = format!("0::{path}");
    for hint in crate::containers::procfs::parse_cgroup(&line) {
        if let Some(c) = handle.block_on(collection.describe(&hint.id, hint.namespace.as_deref())) {
            return Some(c);
        }
    }
    None
}

/// Stops recording a mount namespace and gives its slot back to BPF. The namespace is marked
/// closed by inode and id, not by a verdict in the inode-keyed filter map, which a new namespace
/// taking the inode of this one after it dies would inherit.
pub(super) fn close_slot(loaded: &LoadedGadget, s: &Slot) -> Result<(), RunError> {
    let slot = s.slot;
    let mut closed = [0u8; 16];
    closed[..4].copy_from_slice(&CLOSED.to_le_bytes());
    loaded
        .map(SLOTS)?
        .update(&key_bytes(s.key()), &closed, MapFlags::ANY)
        .map_err(|e| map_err(SLOTS, e))?;
    let empty = [0u8; CGROUP_SIZE];
    loaded
        .map(CGROUPS)?
        .update(&slot.to_le_bytes(), &empty, MapFlags::ANY)
        .map_err(|e| map_err(CGROUPS, e))?;
    loaded
        .map(FREE_SLOTS)?
        .update(&[], &slot.to_le_bytes(), MapFlags::ANY)
        .map_err(|e| map_err(FREE_SLOTS, e))?;
    Ok(())
}
