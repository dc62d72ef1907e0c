//! Wires a run together: image → spec → load → attach → ring buffers → pipelines → sinks.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, PerfBufferBuilder, RingBufferBuilder};

use super::outputs::Outputs;
use super::pipeline::{build_schema_with, Pipeline};
use super::selection::Selection;
use super::{RunConfig, RunError};
use crate::containers::{procfs, MntnsKey};
use crate::gadget::loader::{LoadSettings, LoadedGadget};
use crate::gadget::spec::encode_param;
use crate::gadget::spec::Semantic;
use crate::gadget::{GadgetSpec, Metadata};
use crate::oci::image::{read_gadget, GadgetImage};
use crate::oci::{Reference, Store};
use crate::operators::fields::display_order;
use crate::operators::process::{LineageOptions, ProcessCache, CACHE_CAPACITY};

/// How long the reader sleeps when no wakeup comes; bounds the latency on an idle machine.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// An image read from the store and analysed, ready to be configured.
pub struct Prepared {
    pub image: GadgetImage,
    pub spec: GadgetSpec,
}

/// Reads the image for this machine's architecture (seeding a built-in gadget if needed).
pub fn prepare(store: &Store, reference: &Reference) -> Result<Prepared, RunError> {
    crate::builtin::seed_if_builtin(store, reference)?;
    let arch = crate::gadget::build::Arch::host()
        .map(|a| a.oci_name())
        .unwrap_or("amd64");
    let image = read_gadget(store, reference, arch)?;
    let metadata = Metadata::parse(&image.metadata_yaml)?;
    let spec = GadgetSpec::analyze(&image.object, metadata)?;
    Ok(Prepared { image, spec })
}

/// The host's mount namespace: init's, or ours where init's cannot be read (a sandbox
/// without access to pid 1). With `HOST_ROOT` set, `ig` runs in a container: its own
/// namespace is that container's, never the host's, so there is no fallback (the host's
/// processes are then told by their cgroups, as any namespace nothing names yet).
pub(super) fn host_mntns() -> Option<MntnsKey> {
    let key =
        |pid: &str| procfs::mntns_key_at(&format!("{}/{pid}/ns/mnt", procfs::proc_root())).ok();
    key("1").or_else(|| {
        crate::hostroot::root()
            .is_none()
            .then(|| procfs::mntns_key_at("/proc/self/ns/mnt").ok())
            .flatten()
    })
}

/// The user's gadget parameters as `.rodata` bytes, by variable.
pub(super) fn encode_params(
    spec: &GadgetSpec,
    config: &RunConfig,
) -> Result<Vec<(String, Vec<u8>)>, RunError> {
    let mut params = Vec::new();
    for (key, value) in config.params.iter().chain(&pushed_down(spec, config)) {
        let p = spec
            .param(key)
            .ok_or_else(|| RunError::Config(format!("unknown gadget parameter --{key}")))?;
        if let Some(bytes) = encode_param(p, value)? {
            params.push((p.var.clone(), bytes));
        }
    }
    Ok(params)
}

/// `--filter` conditions `field==value` that a gadget parameter of the same key can decide in
/// BPF (Inspektor Gadget's `filter.h` params: comm, pid, uid, …), when the user left that
/// parameter unset: the events are dropped before the ring. The filter still applies in user
/// space, so a parameter whose meaning differs cannot let more through.
fn pushed_down(spec: &GadgetSpec, config: &RunConfig) -> Vec<(String, String)> {
    let set = |key: &str| {
        config
            .params
            .iter()
            .any(|(k, v)| k == key && !v.trim().is_empty())
    };
    config
        .filters
        .iter()
        .filter_map(|f| crate::operators::filter::parse(f).ok())
        .flatten()
        .filter(|c| c.op == crate::operators::filter::Op::Eq)
        .filter(|c| spec.param(&c.field).is_some() && !set(&c.field))
        .map(|c| (c.field, c.value))
        .collect()
}

/// `--parent` and `--ancestors N` (gadget parameters of those keys): what the lineage
/// operator adds. A value that does not parse is refused by the parameter's own check.
fn lineage_options(config: &RunConfig) -> LineageOptions {
    let value = |key: &str| {
        config
            .params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_string())
    };
    LineageOptions {
        parent: value("parent").is_some_and(|v| v == "true" || v.is_empty()),
        ancestors: value("ancestors").and_then(|v| v.parse().ok()).unwrap_or(0),
    }
}

/// Whether a data source is on: always, unless gadget.yaml names a boolean parameter that
/// enables it (`enabledBy`) and the run leaves it false.
fn datasource_enabled(spec: &GadgetSpec, config: &RunConfig, name: &str) -> bool {
    let Some(var) = spec.metadata.datasource_enabled_by(name) else {
        return true;
    };
    let Some(p) = spec.params.iter().find(|p| p.var == var) else {
        return true;
    };
    let set = config
        .params
        .iter()
        .rev()
        .find(|(k, _)| *k == p.key)
        .map(|(_, v)| v.trim().to_string());
    match set {
        Some(v) => v.is_empty() || v == "true",
        None => p.default == "true",
    }
}

/// Programs whose `skipWhen` parameter is on for this run, or none of whose `loadWhen`
/// parameters is.
fn skipped_programs(spec: &GadgetSpec, params: &[(String, Vec<u8>)]) -> Vec<String> {
    // A parameter as this run sets it (its bytes in the object: a bool is 1, a number any
    // byte not 0), else its default.
    let on = |var: &str| {
        let set = params
            .iter()
            .find(|(v, _)| v == var)
            .map(|(_, b)| b.iter().any(|&x| x != 0));
        let default = spec
            .params
            .iter()
            .find(|p| p.var == var)
            .map(|p| p.default == "true" || p.default.parse::<u64>().is_ok_and(|n| n != 0));
        set.or(default).unwrap_or(false)
    };
    let skip = spec
        .metadata
        .skip_when()
        .into_iter()
        .filter(|(_, var)| on(var))
        .map(|(prog, _)| prog);
    let unused = spec
        .metadata
        .load_when()
        .into_iter()
        .filter(|(_, vars)| !vars.iter().any(|v| on(v)))
        .map(|(prog, _)| prog);
    skip.chain(unused).collect()
}

/// The container collection a run enriches from, and the tokio runtime that keeps it current.
pub type Containers = (
    std::sync::Arc<crate::containers::ContainerCollection>,
    tokio::runtime::Handle,
);

/// Finishes connecting to the container runtimes. A run calls it once its BPF object is
/// loaded: listing the containers (tens of ms) overlaps loading and verifying the programs.
pub type ConnectContainers<'a> = Box<dyn FnOnce() -> Result<Option<Containers>, RunError> + 'a>;

/// The run's container selection, with its first verdicts already in the BPF filter map.
pub(super) fn selection_for(
    config: &RunConfig,
    containers: Option<Containers>,
    loaded: &LoadedGadget,
) -> Result<Selection, RunError> {
    let mut selection = Selection::new(
        config.containers.clone(),
        config.host,
        host_mntns(),
        containers,
        loaded.mntns_notes(),
    );
    apply_verdicts(loaded, &mut selection)?;
    Ok(selection)
}

/// Pushes the selection's verdicts to the BPF filter map. A verdict the map refuses (full:
/// more namespaces came and went than it holds before dead ones were swept) is not an error:
/// the namespace's events keep reaching user space, where the same verdict applies. Counted.
pub(super) fn apply_verdicts(
    loaded: &LoadedGadget,
    selection: &mut Selection,
) -> Result<(), RunError> {
    let updates: Vec<_> = selection.map_updates.drain(..).collect();
    for (mntns, verdict) in updates {
        match verdict {
            Some(keep) => {
                if loaded.set_mntns_verdict(mntns, keep).is_err() {
                    selection.verdicts_refused += 1;
                }
                if selection.host_mntns().is_some_and(|h| h.matches(&mntns)) {
                    loaded.set_host_verdict(mntns.inum, keep);
                }
            }
            None => loaded.forget_mntns(mntns),
        }
    }
    Ok(())
}

/// Runs until `stop` is set, the timeout passes, the output closes or `max_events` is reached.
/// Returns the number of events written.
pub fn run(
    store: &Store,
    config: &RunConfig,
    containers: ConnectContainers<'_>,
    stop: &AtomicBool,
    outputs: &dyn Outputs,
) -> Result<u64, RunError> {
    let Prepared { image, spec } = prepare(store, &config.image)?;
    spec.metadata.debug_unknown_keys();
    if let Some(expected) = &config.expected_digest {
        if *expected != image.index_digest {
            return Err(RunError::Config(format!(
                "image {} changed after it was verified ({expected} verified, {} found): refusing to load it",
                image.reference, image.index_digest
            )));
        }
    }
    if spec.recorder().is_some() {
        if !config.filters.is_empty() {
            return Err(RunError::Config(
                "--filter is for tracers; a flight recorder takes --syscall-filters".into(),
            ));
        }
        return super::traceloop::run(&image, &spec, config, containers, stop, outputs);
    }
    if spec.is_array_gadget() {
        return super::arrays::run(&image, &spec, config, containers, stop, outputs);
    }
    if config.arrays.any_set() {
        return Err(RunError::Config(format!(
            "--sort, --max-entries, --map-fetch-interval and --map-fetch-count are for map and BPF iterator gadgets; {} is a tracer",
            image.reference
        )));
    }
    if spec.tracers.is_empty() {
        return Err(RunError::Unsupported {
            gadget: image.reference.clone(),
            reason: "it declares no tracer (GADGET_TRACER), so there is nothing to read".into(),
        });
    }

    let lineage = lineage_options(config);
    // Data sources a parameter enables (`datasources: {exit: {enabledBy: exits}}`) that it
    // does not: their programs still run, they just have no events.
    let tracers: Vec<_> = spec
        .tracers
        .iter()
        .filter(|t| datasource_enabled(&spec, config, &t.name))
        .collect();
    let internal: Vec<bool> = tracers
        .iter()
        .map(|t| spec.metadata.datasource_internal(&t.name))
        .collect();
    // Filters are checked against every shown tracer's fields before anything loads. Each
    // schema is built once (building it says the yaml's unknown annotations at debug level).
    let mut schemas = Vec::new();
    for (tracer, internal) in tracers.iter().zip(&internal) {
        let (schema, enricher, yaml_order) = build_schema_with(tracer, &spec.metadata, lineage);
        let filter = if *internal {
            None
        } else {
            crate::operators::filter::Filter::compile(&config.filters, &schema)
                .map_err(|e| RunError::Config(e.to_string()))?
        };
        schemas.push((schema, enricher, yaml_order, filter));
    }
    let params = encode_params(&spec, config)?;
    let skip_programs = skipped_programs(&spec, &params);
    let settings = LoadSettings {
        params,
        filter_by_mntns: true,
        skip_programs,
        ..Default::default()
    };
    let mut loaded = LoadedGadget::load(&image.object, &spec, &settings)?;
    let selection = selection_for(config, containers()?, &loaded)?;

    // The process cache, when a data source carries exec keys and the run shows parents or
    // ancestors (exec ids alone come from the records' keys: plain trace_exec pays no cache).
    // Seeded from /proc once the programs are loaded (a process started between the scan and
    // the attach is read from /proc when an event names it).
    let cache = (tracers.iter().any(|t| {
        t.layout
            .fields
            .iter()
            .any(|f| f.semantic == Semantic::ExecKey)
    }) && (lineage.parent || lineage.ancestors > 0))
        .then(|| {
            let mut cache =
                ProcessCache::new(crate::operators::process::node_name(), CACHE_CAPACITY);
            cache.scan_proc();
            RefCell::new(cache)
        });
    let mut pipelines = Vec::new();
    // Shown data sources are numbered from 0 in the gadget's order; internal ones have none.
    let mut datasource = 0;
    for ((tracer, (schema, enricher, yaml_order, filter)), internal) in
        tracers.iter().zip(schemas).zip(&internal)
    {
        if *internal {
            pipelines.push(RefCell::new(Pipeline::internal(
                tracer,
                enricher,
                cache.as_ref(),
            )));
            continue;
        }
        let order = display_order(&schema, &yaml_order);
        let sink = outputs.sink(datasource, &schema, order, config)?;
        datasource += 1;
        pipelines.push(RefCell::new(Pipeline::new(
            tracer,
            enricher,
            sink,
            config.max_events,
            filter,
            cache.as_ref(),
        )));
    }
    let selection = RefCell::new(selection);

    loaded.attach()?;
    outputs.attached();
    // Several shown data sources (trace_exec --exits): every header once, first, in the
    // gadget's order, as Inspektor Gadget's CLI prints them; not in the middle of the rows.
    if datasource > 1 {
        for (p, internal) in pipelines.iter().zip(&internal) {
            if !*internal {
                p.borrow_mut().begin();
            }
        }
    }
    let maps: Vec<_> = tracers
        .iter()
        .map(|t| loaded.map(&t.map))
        .collect::<Result<_, _>>()?;
    // Ring buffers share one epoll; Inspektor Gadget's perf-event-array tracers get a perf
    // buffer each (read per CPU; the kernel counts what a full CPU buffer dropped).
    //
    // Internal data sources (the fork records of the process cache) have a ring buffer of
    // their own, consumed before every record of the others: a fork precedes its child's exec
    // in time, but two rings are read one after the other, so without this a child's exec
    // could reach the cache before the fork that is its parent.
    let mut internal_builder = RingBufferBuilder::new();
    let mut internal_rings = 0;
    for ((map, pipeline), _) in maps
        .iter()
        .zip(&pipelines)
        .zip(&tracers)
        .zip(&internal)
        .filter(|((_, t), i)| **i && !t.perf)
        .map(|(x, _)| x)
    {
        let selection = &selection;
        internal_rings += 1;
        internal_builder
            .add(map as &dyn MapCore, move |data: &[u8]| {
                pipeline
                    .borrow_mut()
                    .on_record(data, &mut selection.borrow_mut())
            })
            .map_err(|e| {
                RunError::Gadget(crate::gadget::GadgetError::Map {
                    map: map.name().to_string_lossy().into(),
                    reason: e.to_string(),
                })
            })?;
    }
    let internal_ring = match internal_rings {
        0 => None,
        _ => Some(
            internal_builder
                .build()
                .map_err(|e| RunError::Config(format!("ring buffer: {e}")))?,
        ),
    };
    let drain_internal = || {
        if let Some(r) = &internal_ring {
            let _ = r.consume();
        }
    };
    let mut builder = RingBufferBuilder::new();
    let mut rings = 0;
    let mut perfs = Vec::new();
    for (((map, pipeline), tracer), _) in maps
        .iter()
        .zip(&pipelines)
        .zip(&tracers)
        .zip(&internal)
        .filter(|((_, t), i)| !**i || t.perf)
    {
        let drain_internal = &drain_internal;
        let selection = &selection;
        let map_error = |e: libbpf_rs::Error| {
            RunError::Gadget(crate::gadget::GadgetError::Map {
                map: map.name().to_string_lossy().into(),
                reason: e.to_string(),
            })
        };
        if tracer.perf {
            let name = tracer.map.clone();
            let perf = PerfBufferBuilder::new(map)
                .sample_cb(move |_cpu, data: &[u8]| {
                    drain_internal();
                    pipeline
                        .borrow_mut()
                        .on_record(data, &mut selection.borrow_mut());
                })
                .lost_cb(move |_cpu, count| pipeline.borrow_mut().lost(&name, count))
                .build()
                .map_err(map_error)?;
            perfs.push(perf);
            continue;
        }
        rings += 1;
        builder
            .add(map as &dyn MapCore, move |data: &[u8]| {
                drain_internal();
                pipeline
                    .borrow_mut()
                    .on_record(data, &mut selection.borrow_mut())
            })
            .map_err(map_error)?;
    }
    let ring = match rings {
        0 => None,
        _ => Some(
            builder
                .build()
                .map_err(|e| RunError::Config(format!("ring buffer: {e}")))?,
        ),
    };
    let read = |wait: Duration| {
        let mut wait = wait;
        drain_internal();
        if let Some(ring) = &ring {
            let _ = ring.poll(wait);
            let _ = ring.consume();
            wait = Duration::ZERO;
        }
        for perf in &perfs {
            let _ = perf.poll(wait);
            let _ = perf.consume();
            wait = Duration::ZERO;
        }
    };

    let started = Instant::now();
    let mut reported: Vec<(String, u64)> = Vec::new();
    let mut last_lost_check = Instant::now();
    let report_losses = |loaded: &LoadedGadget, reported: &mut Vec<(String, u64)>| {
        for (map, total) in loaded.lost() {
            let before = reported
                .iter()
                .find(|(m, _)| *m == map)
                .map(|(_, c)| *c)
                .unwrap_or(0);
            if total > before {
                if let Some(p) = tracers.iter().position(|t| t.map == map) {
                    if internal[p] {
                        // Not silent: the cache falls back to /proc for what was lost.
                        outputs.notice(&format!(
                            "{} records of the internal data source {} were lost (ring buffer {map} full); the process cache reads those processes from /proc",
                            total - before,
                            tracers[p].name
                        ));
                    } else {
                        pipelines[p].borrow_mut().lost(&map, total - before);
                    }
                }
                reported.retain(|(m, _)| *m != map);
                reported.push((map, total));
            }
        }
    };
    loop {
        read(POLL_INTERVAL);
        let released = selection.borrow_mut().poll();
        for r in &released {
            for p in &pipelines {
                p.borrow_mut().release(r);
            }
        }
        apply_verdicts(&loaded, &mut selection.borrow_mut())?;
        for p in &pipelines {
            p.borrow_mut().flush();
        }
        if last_lost_check.elapsed() >= Duration::from_secs(1) {
            report_losses(&loaded, &mut reported);
            last_lost_check = Instant::now();
        }
        let done = pipelines.iter().any(|p| p.borrow().stopped);
        let timed_out = config.timeout.is_some_and(|t| started.elapsed() >= t);
        if done || timed_out || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    // Detach first, then drain what is already in the rings.
    drop(maps);
    loaded.detach();
    read(Duration::ZERO);
    // Held events wait for their container's announcement at most HOLD_MAX.
    let deadline = Instant::now() + super::selection::HOLD_MAX;
    while selection.borrow().holding() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        for r in selection.borrow_mut().poll() {
            for p in &pipelines {
                p.borrow_mut().release(&r);
            }
        }
    }
    report_losses(&loaded, &mut reported);
    drop(perfs);
    drop(ring);
    let mut total = 0;
    let mut unclaimed_events = 0;
    let mut error = None;
    for p in &pipelines {
        let mut p = p.borrow_mut();
        total += p.emitted;
        unclaimed_events += p.unclaimed_events;
        if let Some(e) = p.finish() {
            error.get_or_insert(e);
        }
    }
    if std::env::var_os("IG_STATS").is_some() {
        // For tests and debugging: what the run holds at its end (churn must not grow it).
        let entries = loaded
            .map(crate::gadget::loader::MNTNS_FILTER_MAP)
            .map(|m| m.keys().count())
            .unwrap_or(0);
        outputs.notice(&format!(
            "stats: events {total}, filter-map entries {entries}, known namespaces {}, held namespaces {}, unclaimed namespaces {} (events {unclaimed_events}), verdicts the filter map refused {}",
            selection.borrow().known_count(),
            selection.borrow().holding(),
            selection.borrow().unclaimed(),
            selection.borrow().verdicts_refused,
        ));
        if let Some(cache) = &cache {
            let cache = cache.borrow();
            outputs.notice(&format!(
                "stats: process cache entries {} (capacity {}), evictions {}, read from /proc on demand {}",
                cache.len(),
                cache.capacity(),
                cache.evictions,
                cache.from_proc,
            ));
        }
    }
    let unclaimed = selection.borrow().unclaimed();
    if unclaimed_events > 0 {
        let fate = if config.host {
            "shown without a container"
        } else {
            "dropped"
        };
        outputs.notice(&format!(
            "note: {unclaimed_events} events of {unclaimed} mount namespaces that no container runtime claimed within {} ms were {fate}",
            super::selection::HOLD_MAX.as_millis()
        ));
    }
    drop(loaded);
    match error {
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(total),
        Some(e) => Err(RunError::Output(e)),
        None => Ok(total),
    }
}
