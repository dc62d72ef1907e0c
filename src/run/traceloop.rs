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

use super::runner::{apply_verdicts, Containers};
use super::selection::Selection;
use super::{RunConfig, RunError};
use crate::containers::{Container, ContainerCollection};
use crate::gadget::loader::{LoadSettings, LoadedGadget};
use crate::gadget::spec::encode_param;
use crate::gadget::GadgetSpec;
use crate::oci::image::GadgetImage;
use crate::output::OutputMode;
use crate::traceloop::record::{parse_records, select_window, RECORD_SIZE};
use crate::traceloop::{format_line, to_json, Arch, Decoder, SyscallFormats, Timebase};

const RECORDS: &str = "traceloop_records";
const HEADS: &str = "traceloop_heads";
const SLOTS: &str = "traceloop_slots";
const FREE_SLOTS: &str = "traceloop_free_slots";
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
    RunError::Gadget(crate::gadget::GadgetError::Map { map: map.to_string(), reason: e.to_string() })
}

fn param_u32(spec: &GadgetSpec, config: &RunConfig, var: &str) -> Result<u32, RunError> {
    let p = spec
        .params
        .iter()
        .find(|p| p.var == var)
        .ok_or_else(|| RunError::Unsupported { gadget: "traceloop".into(), reason: format!("no parameter {var}") })?;
    let value = config.params.iter().find(|(k, _)| *k == p.key).map(|(_, v)| v.as_str()).unwrap_or(&p.default);
    value
        .parse()
        .ok()
        .filter(|v: &u32| *v > 0)
        .ok_or_else(|| RunError::Config(format!("--{} must be a positive number, not {value:?}", p.key)))
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
    containers: Option<Containers>,
    stop: &AtomicBool,
) -> Result<u64, RunError> {
    let per_container = param_u32(spec, config, "records_per_container")?;
    let max_containers = param_u32(spec, config, "max_containers")?;
    let total = per_container
        .checked_mul(max_containers)
        .filter(|t| (*t as u64) * RECORD_SIZE as u64 <= 4 << 30)
        .ok_or_else(|| RunError::Config("--records × --max-containers is too large (over 4 GiB)".into()))?;

    let arch = Arch::host().unwrap_or(Arch::X86_64);
    let mut params = Vec::new();
    for (key, value) in &config.params {
        let p = spec.param(key).ok_or_else(|| RunError::Config(format!("unknown gadget parameter --{key}")))?;
        if let Some(bytes) = encode_param(p, value)? {
            params.push((p.var.clone(), bytes));
        }
    }
    let mut filter_nrs = Vec::new();
    for name in &config.syscall_filters {
        let nr = arch
            .syscall_nr(name)
            .ok_or_else(|| RunError::Config(format!("--syscall-filters: unknown syscall {name:?}")))?;
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
            (SLOTS.into(), max_containers),
            (FREE_SLOTS.into(), max_containers),
            (CGROUPS.into(), max_containers),
        ],
        ..Default::default()
    };
    let mut loaded = LoadedGadget::load(&image.object, spec, &settings)?;
    if !filter_nrs.is_empty() {
        let map = loaded.map(SYSCALL_FILTERS)?;
        for nr in &filter_nrs {
            map.update(&nr.to_le_bytes(), &[1], MapFlags::ANY).map_err(|e| map_err(SYSCALL_FILTERS, e))?;
        }
    }
    let host_mntns = std::fs::metadata("/proc/1/ns/mnt").ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let collection = containers.as_ref().map(|(c, _)| c.clone());
    let handle = containers.as_ref().map(|(_, h)| h.clone());
    let mut selection = Selection::new(config.containers.clone(), config.host, host_mntns, containers);
    apply_verdicts(&loaded, &mut selection)?;
    loaded.attach()?;
    eprintln!("ig: recording syscalls; the history is printed when the run stops (Ctrl-C or --timeout)");

    let started = Instant::now();
    // mntns → (first seen, last try): retried while its processes may still be alive.
    let mut resolving: HashMap<u64, (Instant, Instant)> = HashMap::new();
    loop {
        std::thread::sleep(SCAN_INTERVAL);
        // Name the container behind every new buffer while its processes still live.
        if let (Some(col), Some(h)) = (&collection, &handle) {
            for (mntns, slot) in slots(&loaded)? {
                if col.lookup_mntns(mntns).is_some() || Some(mntns) == host_mntns {
                    continue;
                }
                let now = Instant::now();
                let (first, last) = resolving.entry(mntns).or_insert((now, now - RETRY_EVERY));
                if now.duration_since(*first) > RESOLVE_FOR || now.duration_since(*last) < RETRY_EVERY {
                    continue;
                }
                *last = now;
                for pid in slot_pids(&loaded, slot, per_container)? {
                    let col = col.clone();
                    h.spawn(async move {
                        col.resolve_pid(pid).await;
                    });
                }
            }
        }
        selection.poll();
        apply_verdicts(&loaded, &mut selection)?;
        let timed_out = config.timeout.is_some_and(|t| started.elapsed() >= t);
        if timed_out || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    loaded.detach();
    // Give resolutions started in the last instants a moment to land.
    std::thread::sleep(Duration::from_millis(200));
    selection.poll();

    let dump = Dump { loaded: &loaded, per_container, arch, collection: collection.as_deref(), handle: handle.as_ref() };
    let written = dump.print(config, &selection)?;
    report_lost(&loaded);
    Ok(written)
}

fn slots(loaded: &LoadedGadget) -> Result<Vec<(u64, u32)>, RunError> {
    let map = loaded.map(SLOTS)?;
    let mut out = Vec::new();
    for key in map.keys() {
        if let Ok(Some(v)) = map.lookup(&key, MapFlags::ANY) {
            out.push((u64_at(&key), u64_at(&v) as u32));
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

fn report_lost(loaded: &LoadedGadget) {
    for name in LOST {
        let count = loaded.bss_u64(name).unwrap_or(0);
        if count > 0 {
            let what = if name == LOST[0] {
                "containers got no buffer (raise --max-containers)"
            } else {
                "records were dropped"
            };
            eprintln!("ig: warning: {count} {what}");
        }
    }
}

struct Dump<'a> {
    loaded: &'a LoadedGadget,
    per_container: u32,
    arch: Arch,
    collection: Option<&'a ContainerCollection>,
    handle: Option<&'a tokio::runtime::Handle>,
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
    /// The container of a slot from the cgroup BPF noted, for one that exited before its
    /// runtime could be asked about its processes.
    fn by_cgroup(&self, slot: u32) -> Option<Arc<Container>> {
        let (collection, handle) = (self.collection?, self.handle?);
        let value = self.loaded.map(CGROUPS).ok()?.lookup(&slot.to_le_bytes(), MapFlags::ANY).ok()??;
        let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]).into_owned();
        let (parent, leaf) = (text(value.get(..64)?), text(value.get(64..)?));
        if leaf.is_empty() {
            return None;
        }
        let line = format!("0::/{parent}/{leaf}");
        for hint in crate::containers::procfs::parse_cgroup(&line) {
            if let Some(c) = handle.block_on(collection.describe(&hint.id, hint.namespace.as_deref())) {
                return Some(c);
            }
        }
        None
    }

    fn print(&self, config: &RunConfig, selection: &Selection) -> Result<u64, RunError> {
        let decoder = Decoder::new(self.arch, SyscallFormats::load());
        let heads = self.loaded.map(HEADS)?;
        let mut by_start: BTreeMap<(u64, u64), (Option<Arc<Container>>, Vec<crate::traceloop::SyscallEvent>)> =
            BTreeMap::new();
        for (mntns, slot) in slots(self.loaded)? {
            let container = match self.collection.and_then(|c| c.lookup_mntns(mntns)) {
                Some(c) => Some(c),
                None => self.by_cgroup(slot),
            };
            if !selection.shows(mntns, container.as_deref()) {
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
            let window = select_window(records, mntns, head, self.per_container as u64);
            let events = decoder.decode(&window);
            let first = events.first().map(|e| e.timestamp).unwrap_or(0);
            by_start.insert((first, mntns), (container, events));
        }
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut written = 0;
        let result: std::io::Result<()> = (|| {
            for ((_, mntns), (container, events)) in &by_start {
                let base = Timebase::of(events);
                if config.output == OutputMode::Columns {
                    let who = match container {
                        Some(c) => format!("container {} ({} {})", c.name, c.runtime, &c.id[..c.id.len().min(12)]),
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
                                let text = serde_norway::to_string(&v).map_err(std::io::Error::other)?;
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
