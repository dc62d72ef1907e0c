//! Running gadgets whose data comes in arrays: map iterators (`GADGET_MAPITER`: a hash map
//! read and drained every `--map-fetch-interval`) and BPF iterators (`GADGET_ITER`: programs
//! of `iter/task`, `iter/task_file`, `iter/tcp`, `iter/udp` whose `bpf_seq_write` output is
//! read as a snapshot). Each read is one array: decode → enrich → select → filter → sort →
//! cut → output.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libbpf_rs::MapCore;

use super::array_opts::Sorter;
use super::pipeline::{build_schema, Enrichers};
use super::runner::{encode_params, host_mntns, ConnectContainers, Containers};
use super::{Outputs, RunConfig, RunError};
use std::sync::Arc;

use crate::containers::{Container, ContainerCollection, MntnsKey};
use crate::event::{Event, Value};
use crate::gadget::decode::Decoder;
use crate::gadget::iters::{Iter, MapIter};
use crate::gadget::loader::{LoadSettings, LoadedGadget};
use crate::gadget::spec::{Semantic, Tracer};
use crate::gadget::{GadgetError, GadgetSpec};
use crate::oci::image::GadgetImage;
use crate::operators::containers::ContainerFields;
use crate::operators::fields::display_order;
use crate::operators::filter::Filter;
use crate::output::ArraySink;

/// Default time between two reads of a map iterator (Inspektor Gadget's `1000ms`).
pub const DEFAULT_MAP_FETCH_INTERVAL: Duration = Duration::from_secs(1);
/// The most bytes one read of an iterator may produce (a runaway program is cut, with an
/// error, instead of filling memory).
const MAX_ITER_BYTES: usize = 256 << 20;

enum Source<'s> {
    Map(&'s MapIter),
    Iter(&'s Iter),
}

impl Source<'_> {
    fn tracer(&self) -> Tracer {
        match self {
            Source::Map(m) => m.as_tracer(),
            Source::Iter(i) => i.as_tracer(),
        }
    }

    fn per_netns(&self) -> bool {
        matches!(self, Source::Iter(i) if i.per_netns())
    }
}

/// The schema of an array data source: [`build_schema`]'s, and for a socket iterator
/// (`per_netns`: `iter/tcp`, `iter/udp`) the container fields too, filled from the network
/// namespace its rows were read in (such rows carry no mount namespace).
pub fn array_schema(
    tracer: &Tracer,
    per_netns: bool,
    metadata: &crate::gadget::Metadata,
) -> (crate::event::Schema, Enrichers, Vec<String>) {
    let (mut schema, mut enrichers, order) = build_schema(tracer, metadata);
    if per_netns && enrichers.containers.is_none() {
        enrichers.containers = Some(ContainerFields::add(&mut schema));
    }
    (schema, enrichers, order)
}

/// Where a row was read: what a socket iterator's rows are enriched with.
#[derive(Clone)]
enum Origin {
    /// Not a per-namespace read (the row says where it belongs, e.g. by its mntns).
    Any,
    /// ig's own (the host's) network namespace.
    Host,
    /// A container's network namespace (the first container selected of those sharing it).
    Container(Arc<Container>),
}

/// One data source's stages.
struct ArrayPipeline<'a, 's> {
    source: Source<'s>,
    decoder: Decoder,
    enrichers: Enrichers,
    mntns_field: Option<usize>,
    nsid_field: Option<usize>,
    filter: Option<Filter>,
    sorter: Sorter,
    sink: Box<dyn ArraySink + 'a>,
}

/// Whether a row of mount namespace `key` is shown, and for which container: `-c` names
/// select containers; rows outside containers only with `--host`. A snapshot is read after
/// the runtimes are listed, so a namespace no runtime knows is not a container.
fn select(
    config: &RunConfig,
    collection: Option<&ContainerCollection>,
    host: Option<MntnsKey>,
    key: MntnsKey,
) -> Option<Option<std::sync::Arc<crate::containers::Container>>> {
    let container = match host {
        Some(h) if h.matches(&key) => None,
        _ => collection.and_then(|c| c.lookup_mntns(key)),
    };
    match container {
        Some(c) if config.containers.is_empty() || config.containers.contains(&c.name) => {
            Some(Some(c))
        }
        Some(_) => None,
        None if config.host => Some(None),
        None => None,
    }
}

pub(super) fn run(
    image: &GadgetImage,
    spec: &GadgetSpec,
    config: &RunConfig,
    containers: ConnectContainers<'_>,
    stop: &AtomicBool,
    outputs: &dyn Outputs,
) -> Result<u64, RunError> {
    if !spec.tracers.is_empty() {
        return Err(RunError::Unsupported {
            gadget: image.reference.clone(),
            reason:
                "it mixes tracers with map or BPF iterators, which ig does not run together yet"
                    .into(),
        });
    }
    let sources: Vec<Source> = spec
        .map_iters
        .iter()
        .map(Source::Map)
        .chain(spec.iters.iter().map(Source::Iter))
        .collect();
    // Defaults by kind: a map iterator is read every second until stopped; a BPF iterator is
    // a snapshot, read once at start.
    let only_iters = spec.map_iters.is_empty();
    let count = config
        .arrays
        .fetch_count
        .unwrap_or(if only_iters { 1 } else { 0 });
    let interval = config.arrays.fetch_interval.unwrap_or(if only_iters {
        Duration::ZERO
    } else {
        DEFAULT_MAP_FETCH_INTERVAL
    });
    if count != 1 && interval.is_zero() {
        return Err(RunError::Config(
            "--map-fetch-count other than 1 needs a --map-fetch-interval".into(),
        ));
    }

    // Everything the user typed is checked against the fields before anything loads.
    let mut stages = Vec::new();
    for source in sources {
        let tracer = source.tracer();
        let (schema, enrichers, yaml_order) =
            array_schema(&tracer, source.per_netns(), &spec.metadata);
        let filter = Filter::compile(&config.filters, &schema)
            .map_err(|e| RunError::Config(e.to_string()))?;
        let sorter = Sorter::compile(&config.arrays.sort, &schema).map_err(RunError::Config)?;
        let order = display_order(&schema, &yaml_order);
        let clear = spec
            .metadata
            .datasource_annotation(&tracer.name, "cli.clear-screen-before")
            .is_some_and(|v| v == "true");
        stages.push((
            source, tracer, schema, enrichers, filter, sorter, order, clear,
        ));
    }
    let params = encode_params(spec, config)?;
    let settings = LoadSettings {
        params,
        // Rows are selected in user space: a snapshot sees every namespace at once.
        filter_by_mntns: false,
        ..Default::default()
    };
    let mut loaded = LoadedGadget::load(&image.object, spec, &settings)?;
    let mut pipelines = Vec::new();
    for (i, (source, tracer, schema, enrichers, filter, sorter, order, clear)) in
        stages.into_iter().enumerate()
    {
        let sink = outputs.array_sink(i, &schema, order, config, clear)?;
        let fields = &tracer.layout.fields;
        pipelines.push(ArrayPipeline {
            source,
            decoder: Decoder::new(tracer.layout.clone()),
            mntns_field: fields.iter().position(|f| f.semantic == Semantic::MntnsId),
            nsid_field: fields
                .iter()
                .position(|f| f.semantic == Semantic::MntnsNsid),
            enrichers,
            filter,
            sorter,
            sink,
        });
    }
    loaded.attach()?;
    let containers: Option<Containers> = containers()?;
    let collection = containers.as_ref().map(|(c, _)| c.clone());
    let host = host_mntns();
    outputs.attached();

    let started = Instant::now();
    let stopped = |now: Instant| {
        stop.load(Ordering::Relaxed) || config.timeout.is_some_and(|t| now - started >= t)
    };
    let mut emitted = 0u64;
    let mut reads = 0u64;
    let mut next = started + interval;
    'reads: loop {
        // Wait for the next read, watching for Ctrl-C and the timeout.
        while Instant::now() < next {
            if stopped(Instant::now()) {
                break 'reads;
            }
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(50)));
        }
        if stopped(Instant::now()) {
            break;
        }
        for p in &mut pipelines {
            let records = match p.source {
                Source::Map(m) => read_map(&loaded, m)?,
                Source::Iter(it) => read_iter(&loaded, it, config, collection.as_deref())?,
            };
            let mut rows = Vec::with_capacity(records.len());
            for (record, origin) in &records {
                let mut event = Event {
                    values: Vec::with_capacity(p.decoder.layout().fields.len() + 16),
                };
                p.decoder.decode(record, &mut event.values);
                let n = event.values.len();
                event.values.resize(n + 16, Value::Null);
                if let Some(i) = p.mntns_field {
                    let key = MntnsKey::new(
                        event.get(i).as_u64().unwrap_or(0),
                        p.nsid_field
                            .and_then(|f| event.get(f).as_u64())
                            .unwrap_or(0),
                    );
                    let Some(container) = select(config, collection.as_deref(), host, key) else {
                        continue;
                    };
                    if let Some(fields) = &p.enrichers.containers {
                        match &container {
                            Some(c) => fields.fill(&mut event, c),
                            None => fields.clear(&mut event),
                        }
                    }
                } else if let Some(fields) = &p.enrichers.containers {
                    match origin {
                        Origin::Container(c) => fields.fill(&mut event, c),
                        Origin::Host => fields.clear(&mut event),
                        Origin::Any => {}
                    }
                }
                p.enrichers.basic.process(&mut event);
                if p.filter.as_ref().is_some_and(|f| !f.matches(&event)) {
                    continue;
                }
                rows.push(event);
            }
            p.sorter.sort(&mut rows);
            if let Some(max) = config.arrays.max_entries {
                rows.truncate(max);
            }
            emitted += rows.len() as u64;
            match p.sink.array(&rows) {
                Ok(true) => {}
                Ok(false) => break 'reads,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break 'reads,
                Err(e) => return Err(RunError::Output(e)),
            }
        }
        reads += 1;
        if count > 0 && reads >= count {
            break;
        }
        next += interval;
    }
    loaded.detach();
    for p in &mut pipelines {
        match p.sink.finish() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(RunError::Output(e))
            }
            _ => {}
        }
    }
    Ok(emitted)
}

/// Reads and deletes every entry of a map iterator's hash map: rows of `key ‖ value`. Keys
/// are listed first, then each is taken with lookup-and-delete (an entry the program adds
/// meanwhile is read next time; one deleted meanwhile is skipped).
fn read_map(loaded: &LoadedGadget, m: &MapIter) -> Result<Vec<(Vec<u8>, Origin)>, RunError> {
    let map = loaded.map(&m.map)?;
    let err = |reason: String| {
        RunError::Gadget(GadgetError::Map {
            map: m.map.clone(),
            reason,
        })
    };
    if map.key_size() != m.key_size || map.value_size() != m.value_size {
        return Err(err(format!(
            "its key and value are {} and {} bytes, its BTF types {} and {}",
            map.key_size(),
            map.value_size(),
            m.key_size,
            m.value_size
        )));
    }
    let keys: Vec<Vec<u8>> = map.keys().collect();
    let mut rows = Vec::with_capacity(keys.len());
    for key in keys {
        match map.lookup_and_delete(&key) {
            Ok(Some(value)) => {
                let mut row = key;
                row.extend_from_slice(&value);
                rows.push((row, Origin::Any));
            }
            Ok(None) => {}
            Err(e) => return Err(err(format!("reading an entry: {e}"))),
        }
    }
    Ok(rows)
}

/// Runs every program of a BPF iterator once and splits the output into records. The
/// socket kinds run once per network namespace (see [`read_in_netns`]): ig's own (the
/// host's) with `--host`, and each selected container's (all of them without `-c`), a
/// namespace shared by several containers once. Each row comes with the namespace it was
/// read in ([`Origin`]).
fn read_iter(
    loaded: &LoadedGadget,
    it: &Iter,
    config: &RunConfig,
    collection: Option<&ContainerCollection>,
) -> Result<Vec<(Vec<u8>, Origin)>, RunError> {
    let size = it.layout.size as usize;
    let mut rows = Vec::new();
    for (prog, kind) in &it.programs {
        let link = loaded.link(prog).ok_or_else(|| {
            RunError::Gadget(GadgetError::Program(format!(
                "iterator program `{prog}` is not attached"
            )))
        })?;
        let link_fd = link.as_fd().as_raw_fd();
        let mut outputs = Vec::new();
        if kind.per_netns() {
            let mut seen = vec![netns_of("self")];
            if config.host {
                outputs.push((read_link(link_fd, prog)?, Origin::Host));
            }
            let selected = |c: &crate::containers::Container| {
                config.containers.is_empty() || config.containers.contains(&c.name)
            };
            for c in collection.map(|c| c.all()).unwrap_or_default() {
                if !selected(&c) {
                    continue;
                }
                let ns = netns_of(&c.pid.to_string());
                if c.pid == 0 || ns.is_none() || seen.contains(&ns) {
                    continue;
                }
                seen.push(ns);
                match read_in_netns(link_fd, c.pid) {
                    Ok(bytes) => outputs.push((bytes, Origin::Container(c.clone()))),
                    // The container exited meanwhile: it has no sockets to list.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(RunError::Gadget(GadgetError::Program(format!(
                        "iterator `{prog}` in the network namespace of container {} (pid {}): {e}",
                        c.name, c.pid
                    ))))
                    }
                }
            }
        } else {
            outputs.push((read_link(link_fd, prog)?, Origin::Any));
        }
        for (bytes, origin) in outputs {
            if bytes.len() % size != 0 {
                return Err(RunError::Gadget(GadgetError::Program(format!(
                    "iterator `{prog}` wrote {} bytes, not a multiple of struct `{}` ({size} bytes)",
                    bytes.len(),
                    it.layout.struct_name
                ))));
            }
            rows.extend(
                bytes
                    .chunks_exact(size)
                    .map(|r| (r.to_vec(), origin.clone())),
            );
        }
    }
    Ok(rows)
}

fn netns_of(pid: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!(
        "{}/{pid}/ns/net",
        crate::containers::procfs::proc_root()
    ))
    .ok()
    .map(|m| m.ino())
}

/// Creates an iterator from the link (`bpf_iter_create`) and reads it to the end.
fn read_link(link_fd: i32, prog: &str) -> Result<Vec<u8>, RunError> {
    read_link_io(link_fd).map_err(|e| {
        RunError::Gadget(GadgetError::Program(format!(
            "reading iterator `{prog}`: {e}"
        )))
    })
}

fn read_link_io(link_fd: i32) -> std::io::Result<Vec<u8>> {
    // SAFETY: bpf_iter_create takes a link fd (borrowed, valid while `loaded` lives) and
    // returns a new fd or a negative errno.
    let fd = unsafe { libbpf_rs::libbpf_sys::bpf_iter_create(link_fd) };
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: `fd` was just returned to us and is owned by nothing else.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut out = Vec::new();
    (&mut file)
        .take(MAX_ITER_BYTES as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() > MAX_ITER_BYTES {
        return Err(std::io::Error::other(format!(
            "it wrote more than {MAX_ITER_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// Reads a socket iterator in the network namespace of `pid`: the kernel lists the sockets
/// of the namespace of the thread that creates the iterator, so a dedicated thread enters
/// it with `setns(CLONE_NEWNET)` (a thread's namespace is its own; ig's other threads stay
/// where they are) and ends with it.
fn read_in_netns(link_fd: i32, pid: u32) -> std::io::Result<Vec<u8>> {
    let path = format!("{}/{pid}/ns/net", crate::containers::procfs::proc_root());
    let ns = std::fs::File::open(&path)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on an fd we hold, for this thread only; the thread ends after
            // the read, so no other work runs in the container's namespace.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            read_link_io(link_fd)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread panicked")))
    })
}
