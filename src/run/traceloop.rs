//! The flight-recorder run mode (`traceloop`): the BPF side writes every syscall of the selected
//! containers into a bounded, overwriting buffer per container; nothing streams. When the run
//! stops, each container's window is read, decoded and printed, also for containers that exited
//! during the run. The map conventions are those of `gadgets/traceloop/README.md`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, MapFlags};

use super::outputs::Outputs;
use super::runner::{apply_verdicts, ConnectContainers};
use super::selection::Selection;
use super::{RunConfig, RunError};
use crate::containers::{Container, ContainerCollection, MntnsKey};
use crate::gadget::loader::{LoadSettings, LoadedGadget};
use crate::gadget::GadgetSpec;
use crate::oci::image::GadgetImage;
use crate::output::OutputMode;
use crate::traceloop::record::{parse_records, select_window, RECORD_SIZE};
use crate::traceloop::{format_line, to_json, Arch, Decoder, SyscallFormats, Timebase};

const RECORDS: &str = "traceloop_records";
const HEADS: &str = "traceloop_heads";
const SLOTS: &str = "traceloop_slots";
const FREE_SLOTS: &str = "traceloop_free_slots";
/// `traceloop_slots` value of a namespace the run does not record (TRACELOOP_CLOSED).
const CLOSED: u32 = u32::MAX;
/// Closed namespaces kept in `traceloop_slots` besides the open ones; dead ones are swept.
const CLOSED_KEPT: u32 = 1024;
const CGROUPS: &str = "traceloop_cgroups";
const SYSCALL_FILTERS: &str = "syscall_filters";
const LOST: [&str; 2] = ["traceloop_lost_containers", "traceloop_lost_records"];

/// How often new buffers are looked at, to name their container while its processes live.
const SCAN_INTERVAL: Duration = Duration::from_millis(20);
/// How long, and how often, an unnamed buffer's processes are asked for their container.
const RESOLVE_FOR: Duration = Duration::from_secs(3);
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// Records of a new buffer whose pids are tried.
const PIDS_FROM: u32 = 64;

fn map_err(map: &str, e: impl std::fmt::Display) -> RunError {
    RunError::Gadget(crate::gadget::GadgetError::Map {
        map: map.to_string(),
        reason: e.to_string(),
    })
}

fn param_u32(spec: &GadgetSpec, config: &RunConfig, var: &str) -> Result<u32, RunError> {
    let p = spec
        .params
        .iter()
        .find(|p| p.var == var)
        .ok_or_else(|| RunError::Unsupported {
            gadget: "traceloop".into(),
            reason: format!("no parameter {var}"),
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

fn u64_at(bytes: &[u8]) -> u64 {
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
    let per_container = param_u32(spec, config, "records_per_container")?;
    let max_containers = param_u32(spec, config, "max_containers")?;
    let total = per_container
        .checked_mul(max_containers)
        .filter(|t| (*t as u64) * RECORD_SIZE as u64 <= 4 << 30)
        .ok_or_else(|| {
            RunError::Config("--records × --max-containers is too large (over 4 GiB)".into())
        })?;

    let arch = Arch::host().unwrap_or(Arch::X86_64);
    let mut params = super::runner::encode_params(spec, config)?;
    let mut filter_nrs = Vec::new();
    for name in &config.syscall_filters {
        let nr = arch.syscall_nr(name).ok_or_else(|| {
            RunError::Config(format!("--syscall-filters: unknown syscall {name:?}"))
        })?;
        filter_nrs.push(nr);
    }
    if !filter_nrs.is_empty() {
        params.retain(|(v, _)| v != "filter_syscalls");
        params.push(("filter_syscalls".into(), vec![1]));
    }
    let settings = LoadSettings {
        params,
        filter_by_mntns: true,
        map_sizes: vec![
            (RECORDS.into(), total),
            (HEADS.into(), max_containers),
            (SLOTS.into(), max_containers.saturating_add(CLOSED_KEPT)),
            (FREE_SLOTS.into(), max_containers),
            (CGROUPS.into(), max_containers),
        ],
        ..Default::default()
    };
    let mut loaded = LoadedGadget::load(&image.object, spec, &settings)?;
    if !filter_nrs.is_empty() {
        let map = loaded.map(SYSCALL_FILTERS)?;
        for nr in &filter_nrs {
            map.update(&nr.to_le_bytes(), &[1], MapFlags::ANY)
                .map_err(|e| map_err(SYSCALL_FILTERS, e))?;
        }
    }
    let host_mntns = super::runner::host_mntns();
    let containers = containers()?;
    let collection = containers.as_ref().map(|(c, _)| c.clone());
    let handle = containers.as_ref().map(|(_, h)| h.clone());
    let mut selection = super::runner::selection_for(config, containers, &loaded)?;
    loaded.attach()?;
    outputs.attached();
    outputs.notice(
        "recording syscalls; the history is printed when the run stops (Ctrl-C or --timeout)",
    );

    let started = Instant::now();
    let mut scan = Scan {
        loaded: &loaded,
        per_container,
        host: config.host,
        host_mntns,
        collection: collection.clone(),
        handle: handle.as_ref(),
        seen: HashMap::new(),
        named: HashMap::new(),
        closed: Vec::new(),
        last_sweep: Instant::now(),
    };
    loop {
        std::thread::sleep(SCAN_INTERVAL);
        scan.run(&selection)?;
        selection.poll();
        apply_verdicts(&loaded, &mut selection)?;
        let timed_out = config.timeout.is_some_and(|t| started.elapsed() >= t);
        if timed_out || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let named = std::mem::take(&mut scan.named);
    loaded.detach();
    // Give resolutions started in the last instants a moment to land.
    std::thread::sleep(Duration::from_millis(200));
    selection.poll();

    let dump = Dump {
        loaded: &loaded,
        per_container,
        arch,
        collection: collection.as_deref(),
        handle: handle.as_ref(),
        named,
    };
    let written = dump.print(config, &selection, outputs)?;
    report_lost(&loaded, outputs);
    Ok(written)
}

/// A mount namespace's buffer. Inodes are reused as soon as a namespace dies; BPF keys the
/// buffers by inode and namespace id, so two namespaces with one inode never share one.
#[derive(Debug, Clone, Copy)]
struct Slot {
    mntns: u64,
    ns_id: u64,
    slot: u32,
    /// The slot's head when this namespace got it: older records are a previous owner's.
    first_seq: u64,
}

type NsKey = MntnsKey;

impl Slot {
    fn key(&self) -> NsKey {
        MntnsKey::new(self.mntns, self.ns_id)
    }

    fn closed(&self) -> bool {
        self.slot == CLOSED
    }
}

/// `struct traceloop_ns`: the layout of `struct gadget_mntns_key`.
fn key_bytes(key: NsKey) -> [u8; 16] {
    key.to_bpf_bytes()
}

fn slots(loaded: &LoadedGadget) -> Result<Vec<Slot>, RunError> {
    let map = loaded.map(SLOTS)?;
    let mut out = Vec::new();
    for key in map.keys() {
        // key: struct traceloop_ns; value: struct traceloop_slot
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

fn read_slot(loaded: &LoadedGadget, slot: u32, per_container: u32) -> Result<Vec<u8>, RunError> {
    let map = loaded.map(RECORDS)?;
    let first = slot as u64 * per_container as u64;
    let mut buf = Vec::with_capacity(per_container as usize * RECORD_SIZE);
    for i in 0..per_container as u64 {
        let key = ((first + i) as u32).to_le_bytes();
        match map.lookup(&key, MapFlags::ANY) {
            Ok(Some(v)) if v.len() == RECORD_SIZE => buf.extend_from_slice(&v),
            _ => buf.extend_from_slice(&[0u8; RECORD_SIZE]),
        }
    }
    Ok(buf)
}

/// Distinct pids among the newest records of a slot: processes most likely still alive and
/// already moved into the container's cgroup.
fn slot_pids(loaded: &LoadedGadget, slot: u32, per_container: u32) -> Result<Vec<u32>, RunError> {
    let head = loaded
        .map(HEADS)?
        .lookup(&slot.to_le_bytes(), MapFlags::ANY)
        .ok()
        .flatten()
        .map(|v| u64_at(&v))
        .unwrap_or(0);
    let map = loaded.map(RECORDS)?;
    let first = slot as u64 * per_container as u64;
    let mut pids = Vec::new();
    for back in 1..=(PIDS_FROM as u64).min(head) {
        let key = ((first + (head - back) % per_container as u64) as u32).to_le_bytes();
        let Some(v) = map.lookup(&key, MapFlags::ANY).ok().flatten() else {
            continue;
        };
        if let Some(r) = parse_records(&v).ok().and_then(|r| r.into_iter().next()) {
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
fn container_by_cgroup(
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
    // { u64 mntns_id; char parent[64]; char leaf[96]; }
    if value.len() < 168 || u64_at(&value[..8]) != mntns {
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

/// Classifies every buffer BPF opened: a selected container keeps it; anything else (another
/// container, a namespace that is no container) is closed and filtered in the kernel from then
/// on, so it cannot take the slots the selected containers need.
struct Scan<'a> {
    loaded: &'a LoadedGadget,
    per_container: u32,
    host: bool,
    host_mntns: Option<MntnsKey>,
    collection: Option<Arc<ContainerCollection>>,
    handle: Option<&'a tokio::runtime::Handle>,
    /// namespace → (first seen, last resolution try, settled).
    seen: HashMap<NsKey, (Instant, Instant, bool)>,
    named: HashMap<NsKey, Arc<Container>>,
    /// Namespaces closed here, and when dead namespaces were last looked for.
    closed: Vec<NsKey>,
    last_sweep: Instant,
}

impl Scan<'_> {
    /// A closed namespace that died is forgotten (its entry only takes room: a new namespace
    /// with its inode has another id).
    fn sweep(&mut self) {
        if self.last_sweep.elapsed() < super::selection::SWEEP_EVERY || self.closed.is_empty() {
            return;
        }
        self.last_sweep = Instant::now();
        let alive = super::selection::live_namespaces();
        if alive.is_empty() {
            return;
        }
        let loaded = self.loaded;
        let seen = &mut self.seen;
        let Ok(map) = loaded.map(SLOTS) else {
            return;
        };
        self.closed.retain(|key| {
            if alive.contains(&key.inum) {
                return true;
            }
            let _ = map.delete(&key_bytes(*key));
            seen.remove(key);
            false
        });
    }

    fn close(&mut self, slot: &Slot) -> Result<(), RunError> {
        close_slot(self.loaded, slot)?;
        self.closed.push(slot.key());
        Ok(())
    }

    fn run(&mut self, selection: &Selection) -> Result<(), RunError> {
        self.sweep();
        let all = slots(self.loaded)?;
        for &slot in &all {
            if slot.closed() {
                continue;
            }
            let mntns = slot.mntns;
            // Where the runtimes cannot give ids (no NS_GET_MNTNS_ID), a container is known by
            // inode alone: it is the newest namespace's of that inode (mnt_namespace.seq, the id
            // BPF reads on those kernels, only grows; 6.18's ns_id does not, but has the ioctl).
            let inode_is_ours = !all.iter().any(|o| o.mntns == mntns && o.ns_id > slot.ns_id);
            let now = Instant::now();
            let entry = self
                .seen
                .entry(slot.key())
                .or_insert((now, now - RETRY_EVERY, false));
            if entry.2 {
                continue;
            }
            if self.host_mntns.is_some_and(|h| h.matches(&slot.key())) {
                entry.2 = true;
                if !self.host {
                    self.close(&slot)?;
                }
                continue;
            }
            if let Some(c) = self
                .collection
                .as_ref()
                .and_then(|c| c.lookup_live_mntns(slot.key()))
                .filter(|c| inode_is_ours || c.mntns_nsid != 0)
            {
                entry.2 = true;
                self.settle(&slot, Some(c), selection)?;
                continue;
            }
            let (first, last) = (entry.0, entry.1);
            if now.duration_since(first) > RESOLVE_FOR || self.collection.is_none() {
                entry.2 = true;
                let c = container_by_cgroup(
                    self.loaded,
                    self.collection.as_deref(),
                    self.handle,
                    slot.slot,
                    mntns,
                );
                self.settle(&slot, c, selection)?;
                continue;
            }
            if now.duration_since(last) < RETRY_EVERY {
                continue;
            }
            entry.1 = now;
            // The cgroup BPF noted names the container, also one already gone.
            if let Some(c) = container_by_cgroup(
                self.loaded,
                self.collection.as_deref(),
                self.handle,
                slot.slot,
                mntns,
            ) {
                entry.2 = true;
                self.settle(&slot, Some(c), selection)?;
                continue;
            }
            // Ask while its processes live: their cgroup names the container.
            if let (Some(col), Some(h)) = (&self.collection, self.handle) {
                for pid in slot_pids(self.loaded, slot.slot, self.per_container)? {
                    let col = col.clone();
                    h.spawn(async move {
                        col.resolve_pid(pid).await;
                    });
                }
            }
        }
        Ok(())
    }

    fn settle(
        &mut self,
        slot: &Slot,
        c: Option<Arc<Container>>,
        selection: &Selection,
    ) -> Result<(), RunError> {
        let keep = selection.shows(slot.key(), c.as_deref());
        if let Some(c) = c {
            self.named.insert(slot.key(), c);
        }
        if !keep {
            self.close(slot)?;
        }
        Ok(())
    }
}

/// Stops recording a mount namespace and gives its slot back to BPF. The namespace is marked
/// closed by inode and id, not by a verdict in the inode-keyed filter map, which a new namespace
/// taking the inode of this one after it dies would inherit.
fn close_slot(loaded: &LoadedGadget, s: &Slot) -> Result<(), RunError> {
    let slot = s.slot;
    let mut closed = [0u8; 16];
    closed[..4].copy_from_slice(&CLOSED.to_le_bytes());
    loaded
        .map(SLOTS)?
        .update(&key_bytes(s.key()), &closed, MapFlags::ANY)
        .map_err(|e| map_err(SLOTS, e))?;
    let empty = [0u8; 168];
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

/// One container's decoded history.
type ContainerTrace = (Option<Arc<Container>>, Vec<crate::traceloop::SyscallEvent>);

struct Dump<'a> {
    loaded: &'a LoadedGadget,
    per_container: u32,
    arch: Arch,
    collection: Option<&'a ContainerCollection>,
    handle: Option<&'a tokio::runtime::Handle>,
    /// Containers named while the run went on, by mount namespace.
    named: HashMap<NsKey, Arc<Container>>,
}

fn container_json(c: Option<&Container>) -> serde_json::Map<String, serde_json::Value> {
    let mut extra = serde_json::Map::new();
    let c = match c {
        Some(c) => c,
        None => return extra,
    };
    extra.insert(
        "runtime".into(),
        serde_json::json!({
            "containerName": c.name,
            "containerId": c.id,
            "containerImageName": c.image_name,
            "runtimeName": c.runtime.as_str(),
            "containerPid": c.pid,
        }),
    );
    extra.insert(
        "k8s".into(),
        serde_json::json!({
            "namespace": c.k8s.namespace, "podName": c.k8s.pod_name, "containerName": c.k8s.container_name,
        }),
    );
    extra
}

impl Dump<'_> {
    fn print(
        &self,
        config: &RunConfig,
        selection: &Selection,
        outputs: &dyn Outputs,
    ) -> Result<u64, RunError> {
        let decoder = Decoder::new(self.arch, SyscallFormats::load());
        let heads = self.loaded.map(HEADS)?;
        let mut by_start: BTreeMap<(u64, u64, u64), ContainerTrace> = BTreeMap::new();
        let open: Vec<Slot> = slots(self.loaded)?
            .into_iter()
            .filter(|s| !s.closed())
            .collect();
        for s in &open {
            let (mntns, slot) = (s.mntns, s.slot);
            // A container known by inode alone is the newest namespace's of that inode (see
            // Scan::run).
            let inode_is_ours = !open.iter().any(|o| o.mntns == mntns && o.ns_id > s.ns_id);
            // Most precise first: named during the run, the cgroup BPF noted for this very
            // namespace, a live container; a removed one only as a last resort (inodes get reused).
            let container = self
                .named
                .get(&s.key())
                .cloned()
                .or_else(|| {
                    container_by_cgroup(self.loaded, self.collection, self.handle, slot, mntns)
                })
                .or_else(|| {
                    let c = self.collection?;
                    c.lookup_live_mntns(s.key())
                        .filter(|c| inode_is_ours || c.mntns_nsid != 0)
                        .or_else(|| c.lookup_mntns(s.key()))
                });
            if !selection.shows(s.key(), container.as_deref()) {
                continue;
            }
            let head = heads
                .lookup(&slot.to_le_bytes(), MapFlags::ANY)
                .ok()
                .flatten()
                .map(|v| u64_at(&v))
                .unwrap_or(0);
            let raw = read_slot(self.loaded, slot, self.per_container)?;
            let records = parse_records(&raw).map_err(|e| RunError::Config(e.to_string()))?;
            let window =
                select_window(records, mntns, s.first_seq, head, self.per_container as u64);
            let events = decoder.decode(&window);
            let first = events.first().map(|e| e.timestamp).unwrap_or(0);
            by_start.insert((first, mntns, s.ns_id), (container, events));
        }
        let mut out = outputs.text();
        let mut written = 0;
        let result: std::io::Result<()> = (|| {
            for ((_, mntns, _), (container, events)) in &by_start {
                let base = Timebase::of(events);
                if config.output == OutputMode::Columns {
                    let who = match container {
                        Some(c) => format!(
                            "container {} ({} {})",
                            c.name,
                            c.runtime,
                            &c.id[..c.id.len().min(12)]
                        ),
                        None => format!("mount namespace {mntns} (not a known container)"),
                    };
                    writeln!(out, "# traceloop of {who}: {} syscalls", events.len())?;
                    for e in events {
                        writeln!(out, "{}", format_line(e, base))?;
                        written += 1;
                    }
                } else {
                    let extra = container_json(container.as_deref());
                    for e in events {
                        let v = to_json(e, base, &extra);
                        match config.output {
                            OutputMode::JsonPretty => serde_json::to_writer_pretty(&mut out, &v)?,
                            OutputMode::Yaml => {
                                let text =
                                    serde_norway::to_string(&v).map_err(std::io::Error::other)?;
                                write!(out, "---\n{text}")?;
                                continue;
                            }
                            _ => serde_json::to_writer(&mut out, &v)?,
                        }
                        writeln!(out)?;
                        written += 1;
                    }
                }
            }
            out.flush()
        })();
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(RunError::Output(e)),
            _ => Ok(written),
        }
    }
}
