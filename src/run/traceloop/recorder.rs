//! The flight recorder itself: the loaded gadget, the naming of its buffers, and the traces it
//! holds. `ig run traceloop` drives one until it stops and dumps everything; the daemon
//! (`ig daemon --traceloop`) keeps one running and reads traces on demand.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use libbpf_rs::{MapCore, MapFlags};

use super::scan::Scan;
use super::{
    close_slot, container_by_cgroup, map_err, param_u32, read_slot, slots, u64_at, Records, Slot,
    CGROUPS, CLOSED_KEPT, FREE_SLOTS, HEADS, SLOTS, SYSCALL_FILTER,
};
use crate::containers::{Container, ContainerCollection, MntnsKey};
use crate::gadget::loader::{LoadSettings, LoadedGadget};
use crate::gadget::spec::recorder_api;
use crate::gadget::GadgetSpec;
use crate::oci::image::GadgetImage;
use crate::output::OutputMode;
use crate::run::outputs::Outputs;
use crate::run::runner::{apply_verdicts, selection_for, Containers};
use crate::run::selection::Selection;
use crate::run::{RunConfig, RunError};
use crate::traceloop::record::{parse_records, select_window};
use crate::traceloop::{Arch, Decoder, RecordLayout, SyscallEvent, SyscallFormats};

/// How often the recorder checks which traced containers are gone.
const LIVENESS_EVERY: Duration = Duration::from_millis(500);

/// One container's (or mount namespace's) buffer, as the recorder holds it.
#[derive(Debug, Clone)]
pub struct Trace {
    pub key: MntnsKey,
    pub slot: u32,
    /// The slot's head when this namespace got it: older records are a previous owner's.
    pub first_seq: u64,
    pub container: Option<Arc<Container>>,
    /// When the recorder first saw the buffer.
    pub opened: SystemTime,
    /// When the recorder saw its container gone (no process left, or removed by its runtime).
    pub exited: Option<SystemTime>,
    /// Its container was once among the runtime's live containers.
    pub seen_live: bool,
}

/// Records held, and the boot-time ns of the oldest and newest, of one trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceExtent {
    pub records: u64,
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
}

pub struct Recorder {
    loaded: LoadedGadget,
    records: Records,
    per_container: u32,
    max_containers: u32,
    arch: Arch,
    decoder: Decoder,
    selection: Option<Selection>,
    scan: Option<Scan>,
    collection: Option<Arc<ContainerCollection>>,
    handle: Option<tokio::runtime::Handle>,
    traces: Vec<Trace>,
    /// Exited traces kept at most; beyond, the oldest exited are closed (and counted).
    pub max_dead: usize,
    /// Exited traces closed to respect `max_dead`.
    pub dropped: u64,
    last_liveness: Instant,
}

impl Recorder {
    /// Loads the gadget (buffers sized from its params) without attaching it.
    pub fn load(
        image: &GadgetImage,
        spec: &GadgetSpec,
        config: &RunConfig,
    ) -> Result<Self, RunError> {
        let unsupported = |reason: String| RunError::Unsupported {
            gadget: image.reference.clone(),
            reason,
        };
        let marker = spec
            .recorder()
            .ok_or_else(|| unsupported("it declares no recorder (GADGET_RECORDER)".into()))?;
        let layout =
            RecordLayout::from_layout(&marker.layout).map_err(|e| unsupported(e.to_string()))?;
        let per_container = param_u32(spec, config, recorder_api::RECORDS_VAR)?;
        let max_containers = param_u32(spec, config, recorder_api::MAX_CONTAINERS_VAR)?;
        let key = |var: &str| {
            spec.params
                .iter()
                .find(|p| p.var == var)
                .map_or(var.to_string(), |p| p.key.clone())
        };
        let total = per_container
            .checked_mul(max_containers)
            .filter(|t| (*t as u64) * layout.size as u64 <= 4 << 30)
            .ok_or_else(|| {
                RunError::Config(format!(
                    "--{} × --{} is too large (over 4 GiB)",
                    key(recorder_api::RECORDS_VAR),
                    key(recorder_api::MAX_CONTAINERS_VAR)
                ))
            })?;
        let arch = Arch::host().unwrap_or(Arch::X86_64);
        let params = crate::run::runner::encode_params(spec, config)?;
        let mut filter_nrs = Vec::new();
        for name in &config.syscall_filters {
            let nr = arch.syscall_nr(name).ok_or_else(|| {
                RunError::Config(format!("--syscall-filters: unknown syscall {name:?}"))
            })?;
            filter_nrs.push(nr);
        }
        let settings = LoadSettings {
            params,
            filter_by_mntns: true,
            filter_syscalls: !filter_nrs.is_empty(),
            map_sizes: vec![
                (marker.map.clone(), total),
                (HEADS.into(), max_containers),
                (SLOTS.into(), max_containers.saturating_add(CLOSED_KEPT)),
                (FREE_SLOTS.into(), max_containers),
                (CGROUPS.into(), max_containers),
            ],
            ..Default::default()
        };
        let loaded = LoadedGadget::load(&image.object, spec, &settings)?;
        if !filter_nrs.is_empty() {
            let map = loaded.map(SYSCALL_FILTER)?;
            for nr in &filter_nrs {
                map.update(&nr.to_le_bytes(), &[1], MapFlags::ANY)
                    .map_err(|e| map_err(SYSCALL_FILTER, e))?;
            }
        }
        Ok(Recorder {
            loaded,
            records: Records {
                name: marker.name.clone(),
                map: marker.map.clone(),
                layout,
                per_container,
            },
            per_container,
            max_containers,
            arch,
            decoder: Decoder::new(arch, SyscallFormats::load()),
            selection: None,
            scan: None,
            collection: None,
            handle: None,
            traces: Vec::new(),
            max_dead: usize::MAX,
            dropped: 0,
            last_liveness: Instant::now(),
        })
    }

    /// Selects what is recorded (`config`'s containers and `--host`) and attaches.
    pub fn start(
        &mut self,
        config: &RunConfig,
        containers: Option<Containers>,
    ) -> Result<(), RunError> {
        self.collection = containers.as_ref().map(|(c, _)| c.clone());
        self.handle = containers.as_ref().map(|(_, h)| h.clone());
        let selection = selection_for(config, containers, &self.loaded)?;
        self.scan = Some(Scan {
            records: self.records.clone(),
            host: config.host,
            host_mntns: crate::run::runner::host_mntns(),
            collection: self.collection.clone(),
            handle: self.handle.clone(),
            seen: HashMap::new(),
            named: HashMap::new(),
            kept: HashSet::new(),
            closed: Vec::new(),
            last_sweep: Instant::now(),
        });
        self.selection = Some(selection);
        self.loaded.attach()?;
        Ok(())
    }

    pub fn loaded(&self) -> &LoadedGadget {
        &self.loaded
    }

    /// Records per container; buffers at most.
    pub fn bounds(&self) -> (u32, u32) {
        (self.per_container, self.max_containers)
    }

    /// One round: names new buffers, closes the ones not recorded, applies verdicts, and
    /// updates the traces (new, named, exited, the bound on exited ones).
    pub fn tick(&mut self) -> Result<(), RunError> {
        let (Some(scan), Some(selection)) = (self.scan.as_mut(), self.selection.as_mut()) else {
            return Ok(());
        };
        let slots = scan.run(&self.loaded, selection)?;
        selection.poll();
        apply_verdicts(&self.loaded, selection)?;
        self.update_traces(slots)
    }

    pub fn poll_selection(&mut self) {
        if let Some(s) = self.selection.as_mut() {
            s.poll();
        }
    }

    pub fn detach(&mut self) {
        self.loaded.detach();
    }

    /// The traces held: recorded namespaces, running or exited, oldest first.
    pub fn traces(&self) -> &[Trace] {
        &self.traces
    }

    fn update_traces(&mut self, slots: Vec<Slot>) -> Result<(), RunError> {
        let Some(scan) = self.scan.as_ref() else {
            return Ok(());
        };
        let open: Vec<Slot> = slots
            .into_iter()
            .filter(|s| !s.closed() && scan.kept.contains(&s.key()))
            .collect();
        self.traces
            .retain(|t| open.iter().any(|s| s.key() == t.key && s.slot == t.slot));
        for s in &open {
            if !self.traces.iter().any(|t| t.key == s.key()) {
                self.traces.push(Trace {
                    key: s.key(),
                    slot: s.slot,
                    first_seq: s.first_seq,
                    container: None,
                    opened: SystemTime::now(),
                    exited: None,
                    seen_live: false,
                });
            }
        }
        for t in &mut self.traces {
            if t.container.is_none() {
                t.container = scan.named.get(&t.key).cloned();
            }
        }
        if self.last_liveness.elapsed() >= LIVENESS_EVERY {
            self.last_liveness = Instant::now();
            self.mark_exited();
            self.bound_dead()?;
        }
        Ok(())
    }

    fn mark_exited(&mut self) {
        // By inode and id: a dead namespace's inode is soon another one's.
        let alive = crate::run::selection::live_namespace_keys();
        if alive.is_empty() {
            return;
        }
        let live_ids: HashSet<String> = self
            .collection
            .as_ref()
            .map(|c| c.all().iter().map(|c| c.id.clone()).collect())
            .unwrap_or_default();
        let now = SystemTime::now();
        for t in self.traces.iter_mut().filter(|t| t.exited.is_none()) {
            // Its runtime's removal counts once the container was seen live: a container named
            // from its cgroup can be named before the runtime's start event lands.
            let live = t
                .container
                .as_ref()
                .is_some_and(|c| live_ids.contains(&c.id));
            let removed = t.seen_live && !live;
            t.seen_live |= live;
            if removed || !alive.iter().any(|k| k.matches(&t.key)) {
                t.exited = Some(now);
            }
        }
    }

    /// Closes the oldest exited traces beyond `max_dead`, or one when no buffer is free. A
    /// recorder without a bound (a one-shot run, which prints every trace at its end) keeps
    /// them all: new containers then find no buffer, and that is counted and told.
    fn bound_dead(&mut self) -> Result<(), RunError> {
        if self.max_dead == usize::MAX {
            return Ok(());
        }
        // Oldest first: by when they were seen gone, then by when they were first seen (one
        // liveness round may find several gone).
        let mut dead: Vec<(SystemTime, SystemTime, MntnsKey)> = self
            .traces
            .iter()
            .filter_map(|t| t.exited.map(|e| (e, t.opened, t.key)))
            .collect();
        // Every buffer taken: a new container would find none. The oldest exited goes first.
        let open = slots(&self.loaded)?.iter().filter(|s| !s.closed()).count();
        let full = usize::from(open >= self.max_containers as usize);
        let excess = dead
            .len()
            .saturating_sub(self.max_dead)
            .max(full.min(dead.len()));
        if excess == 0 {
            return Ok(());
        }
        dead.sort();
        for (_, _, key) in dead.into_iter().take(excess) {
            self.close(key)?;
            self.dropped += 1;
        }
        Ok(())
    }

    /// Frees a trace's buffer (BPF stops recording its namespace).
    pub fn close(&mut self, key: MntnsKey) -> Result<(), RunError> {
        let Some(pos) = self.traces.iter().position(|t| t.key == key) else {
            return Ok(());
        };
        let t = self.traces.remove(pos);
        let slot = Slot {
            mntns: t.key.inum,
            ns_id: t.key.nsid,
            slot: t.slot,
            first_seq: t.first_seq,
        };
        close_slot(&self.loaded, &slot)
    }

    fn head(&self, slot: u32) -> Result<u64, RunError> {
        Ok(self
            .loaded
            .map(HEADS)?
            .lookup(&slot.to_le_bytes(), MapFlags::ANY)
            .ok()
            .flatten()
            .map(|v| u64_at(&v))
            .unwrap_or(0))
    }

    /// How many records a trace holds, and their time span (reads two records).
    pub fn extent(&self, t: &Trace) -> Result<TraceExtent, RunError> {
        let head = self.head(t.slot)?;
        let low = head
            .saturating_sub(self.per_container as u64)
            .max(t.first_seq);
        if head <= low {
            return Ok(TraceExtent::default());
        }
        let map = self.loaded.map(&self.records.map)?;
        let at = |seq: u64| -> Option<u64> {
            let index = t.slot as u64 * self.per_container as u64 + seq % self.per_container as u64;
            let v = map
                .lookup(&(index as u32).to_le_bytes(), MapFlags::ANY)
                .ok()??;
            let r = parse_records(&self.records.layout, &v)
                .ok()?
                .into_iter()
                .next()?;
            (r.seq == seq && r.mntns_id == t.key.inum).then_some(r.timestamp)
        };
        Ok(TraceExtent {
            records: head - low,
            first_ns: at(low),
            last_ns: at(head - 1),
        })
    }

    /// A trace's history as it is now (recording goes on).
    pub fn events(&self, t: &Trace) -> Result<Vec<SyscallEvent>, RunError> {
        let head = self.head(t.slot)?;
        let raw = read_slot(&self.loaded, &self.records, t.slot)?;
        let records = parse_records(&self.records.layout, &raw)
            .map_err(|e| RunError::Config(e.to_string()))?;
        let window = select_window(
            records,
            t.key.inum,
            t.first_seq,
            head,
            self.per_container as u64,
        );
        Ok(self.decoder.decode(&window))
    }

    /// The container of a buffer, most precise first: named while recording, the cgroup BPF
    /// noted for this very namespace, a live container; a removed one only as a last resort
    /// (inodes get reused).
    fn owner(&self, s: &Slot, open: &[Slot]) -> Option<Arc<Container>> {
        // A container known by inode alone is the newest namespace's of that inode.
        let inode_is_ours = !open.iter().any(|o| o.mntns == s.mntns && o.ns_id > s.ns_id);
        self.scan
            .as_ref()
            .and_then(|scan| scan.named.get(&s.key()).cloned())
            .or_else(|| {
                container_by_cgroup(
                    &self.loaded,
                    self.collection.as_deref(),
                    self.handle.as_ref(),
                    s.slot,
                    s.mntns,
                )
            })
            .or_else(|| {
                let c = self.collection.as_ref()?;
                c.lookup_live_mntns(s.key())
                    .filter(|c| inode_is_ours || c.mntns_nsid != 0)
                    .or_else(|| c.lookup_mntns(s.key()))
            })
    }

    /// Every open buffer the selection shows, oldest history first (a one-shot run's end).
    pub fn dump(&self, mode: OutputMode, outputs: &dyn Outputs) -> Result<u64, RunError> {
        type Entry = (Option<Arc<Container>>, Vec<SyscallEvent>);
        let mut by_start: BTreeMap<(u64, u64, u64), Entry> = BTreeMap::new();
        let open: Vec<Slot> = slots(&self.loaded)?
            .into_iter()
            .filter(|s| !s.closed())
            .collect();
        for s in &open {
            let container = self.owner(s, &open);
            if let Some(sel) = &self.selection {
                if !sel.shows(s.key(), container.as_deref()) {
                    continue;
                }
            }
            let trace = Trace {
                key: s.key(),
                slot: s.slot,
                first_seq: s.first_seq,
                container: None,
                opened: SystemTime::now(),
                exited: None,
                seen_live: false,
            };
            let events = self.events(&trace)?;
            let first = events.first().map(|e| e.timestamp).unwrap_or(0);
            by_start.insert((first, s.mntns, s.ns_id), (container, events));
        }
        let mut out = outputs.text();
        let mut written = 0;
        let result: std::io::Result<()> = (|| {
            for ((_, mntns, _), (container, events)) in &by_start {
                written += super::write_trace(
                    &mut *out,
                    mode,
                    &self.records.name,
                    container.as_deref(),
                    *mntns,
                    events,
                )?;
            }
            out.flush()
        })();
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(RunError::Output(e)),
            _ => Ok(written),
        }
    }

    /// Names a trace's container the way `dump` would, for one not named while recording.
    pub fn name_late(&mut self, key: MntnsKey) {
        let Ok(all) = slots(&self.loaded) else {
            return;
        };
        let open: Vec<Slot> = all.into_iter().filter(|s| !s.closed()).collect();
        let Some(s) = open.iter().find(|s| s.key() == key).copied() else {
            return;
        };
        let owner = self.owner(&s, &open);
        if let Some(t) = self.traces.iter_mut().find(|t| t.key == key) {
            if t.container.is_none() {
                t.container = owner;
            }
        }
    }

    /// The gadget's name for its recorder (`GADGET_RECORDER(name, …)`): titles a trace.
    pub fn name(&self) -> &str {
        &self.records.name
    }

    /// Bytes per record.
    pub fn record_size(&self) -> usize {
        self.records.layout.size
    }

    /// The arch whose syscall table decodes the records.
    pub fn arch(&self) -> Arch {
        self.arch
    }
}
