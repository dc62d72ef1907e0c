//! `ig daemon --traceloop`: one flight recorder, always on, on a thread of its own (libbpf
//! objects stay on the thread that loaded them). Clients list its traces, read one while its
//! container runs or after it is gone, and close them.

use std::sync::mpsc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::oneshot;

use super::proto;
use super::runs::RunContext;
use super::DaemonError;
use crate::oci::Reference;
use crate::output::OutputMode;
use crate::run::traceloop::{write_trace, Recorder, Trace};
use crate::run::RunConfig;

/// How often the recorder names new buffers and looks for exited containers.
const TICK: Duration = Duration::from_millis(20);

/// What `ig daemon --traceloop*` asks for.
#[derive(Debug, Clone)]
pub struct TraceloopConfig {
    /// Only these containers (names); empty: every container.
    pub containers: Vec<String>,
    pub max_containers: u32,
    pub records_per_container: u32,
    /// Exited traces kept; beyond, the oldest exited are closed (and counted).
    pub max_exited: usize,
}

enum Request {
    List(oneshot::Sender<Result<proto::TraceloopListResponse, DaemonError>>),
    Show(
        proto::TraceloopShowRequest,
        oneshot::Sender<Result<proto::TraceloopShowResponse, DaemonError>>,
    ),
    Close(String, oneshot::Sender<Result<proto::Trace, DaemonError>>),
}

/// The handle the gRPC service talks to; dropping it stops the recorder.
pub struct TraceloopHandle {
    tx: mpsc::Sender<Request>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TraceloopHandle {
    /// Loads the built-in traceloop gadget and starts recording; returns once it is attached
    /// (or why it could not be).
    pub fn start(ctx: RunContext, config: TraceloopConfig) -> Result<Self, DaemonError> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ig-traceloop".into())
            .spawn(move || {
                let recorder = start_recorder(&ctx, &config);
                match recorder {
                    Ok(recorder) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(recorder, rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| DaemonError::Internal(format!("starting the recorder thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(TraceloopHandle {
                tx,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(DaemonError::Internal("the recorder thread died".into())),
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, DaemonError>>) -> Request,
    ) -> Result<T, DaemonError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| DaemonError::Internal("the recorder stopped".into()))?;
        rx.await
            .map_err(|_| DaemonError::Internal("the recorder stopped".into()))?
    }

    pub async fn list(&self) -> Result<proto::TraceloopListResponse, DaemonError> {
        self.ask(Request::List).await
    }

    pub async fn show(
        &self,
        req: proto::TraceloopShowRequest,
    ) -> Result<proto::TraceloopShowResponse, DaemonError> {
        self.ask(|r| Request::Show(req, r)).await
    }

    pub async fn close(&self, selector: String) -> Result<proto::Trace, DaemonError> {
        self.ask(|r| Request::Close(selector, r)).await
    }
}

impl Drop for TraceloopHandle {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; it detaches on its way out.
        let (dead, _) = mpsc::channel();
        self.tx = dead;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_recorder(ctx: &RunContext, config: &TraceloopConfig) -> Result<Recorder, DaemonError> {
    let reference = Reference::parse("traceloop").map_err(|e| DaemonError::Image(e.to_string()))?;
    let prepared = crate::run::prepare(&ctx.store, &reference)
        .map_err(|e| DaemonError::Image(format!("the traceloop gadget: {e}")))?;
    let run_config = RunConfig {
        image: reference,
        output: OutputMode::Columns,
        fields: Default::default(),
        timeout: None,
        host: false,
        containers: config.containers.clone(),
        params: vec![
            ("records".into(), config.records_per_container.to_string()),
            ("max-containers".into(), config.max_containers.to_string()),
        ],
        max_events: None,
        expected_digest: None,
        filters: Vec::new(),
        syscall_filters: Vec::new(),
        arrays: Default::default(),
    };
    let mut recorder = Recorder::load(&prepared.image, &prepared.spec, &run_config)
        .map_err(|e| DaemonError::Setup(format!("--traceloop: {e}")))?;
    recorder.max_dead = config.max_exited;
    let containers = ctx.containers.clone().map(|c| (c, ctx.handle.clone()));
    recorder
        .start(&run_config, containers)
        .map_err(|e| DaemonError::Setup(format!("--traceloop: {e}")))?;
    Ok(recorder)
}

fn serve(mut recorder: Recorder, rx: mpsc::Receiver<Request>) {
    let mut last_error = String::new();
    let mut last_tick = std::time::Instant::now();
    loop {
        // Requests never starve the recorder: busy clients or not, it ticks every TICK.
        if last_tick.elapsed() >= TICK {
            last_tick = std::time::Instant::now();
            if let Err(e) = recorder.tick() {
                let e = e.to_string();
                if e != last_error {
                    eprintln!("ig daemon: traceloop: {e}");
                    last_error = e;
                }
            }
        }
        match rx.recv_timeout(TICK.saturating_sub(last_tick.elapsed())) {
            Ok(Request::List(reply)) => {
                let _ = reply.send(list(&recorder));
            }
            Ok(Request::Show(req, reply)) => {
                let _ = reply.send(show(&mut recorder, &req));
            }
            Ok(Request::Close(selector, reply)) => {
                let _ = reply.send(close(&mut recorder, &selector));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    recorder.detach();
}

/// A trace's id: its container's, or its mount namespace's.
fn trace_id(t: &Trace) -> String {
    match &t.container {
        Some(c) => c.id.clone(),
        None => format!("mntns-{}-{}", t.key.inum, t.key.nsid),
    }
}

fn find(recorder: &Recorder, selector: &str) -> Result<Trace, DaemonError> {
    let traces = recorder.traces();
    if let Some(t) = traces.iter().find(|t| trace_id(t) == selector) {
        return Ok(t.clone());
    }
    let by_name: Vec<&Trace> = traces
        .iter()
        .filter(|t| t.container.as_ref().is_some_and(|c| c.name == selector))
        .collect();
    let by_prefix: Vec<&Trace> = traces
        .iter()
        .filter(|t| !selector.is_empty() && trace_id(t).starts_with(selector))
        .collect();
    let matches = if by_name.is_empty() {
        by_prefix
    } else {
        by_name
    };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(DaemonError::NotFound(format!(
            "no trace of a container named {selector:?} (nor with that id); `ig traceloop list` shows them"
        ))),
        many => Err(DaemonError::Invalid(format!(
            "{selector:?} names {} traces ({}): give an id",
            many.len(),
            many.iter()
                .map(|t| trace_id(t).chars().take(12).collect::<String>())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn to_unix_ns(boot_ns: Option<u64>, offset: i128) -> i64 {
    boot_ns
        .map(|ns| (ns as i128 + offset).clamp(0, i64::MAX as i128) as i64)
        .unwrap_or(0)
}

fn trace_proto(recorder: &Recorder, t: &Trace, offset: i128) -> proto::Trace {
    let extent = recorder.extent(t).unwrap_or_default();
    let c = t.container.as_deref();
    proto::Trace {
        id: trace_id(t),
        container_name: c.map(|c| c.name.clone()).unwrap_or_default(),
        container_id: c.map(|c| c.id.clone()).unwrap_or_default(),
        runtime: c
            .map(|c| c.runtime.as_str().to_string())
            .unwrap_or_default(),
        pod_name: c.map(|c| c.k8s.pod_name.clone()).unwrap_or_default(),
        pod_namespace: c.map(|c| c.k8s.namespace.clone()).unwrap_or_default(),
        state: if t.exited.is_some() {
            "exited"
        } else {
            "running"
        }
        .into(),
        exited_unix_ms: t
            .exited
            .and_then(|e| e.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
        records: extent.records,
        first_record_unix_ns: to_unix_ns(extent.first_ns, offset),
        last_record_unix_ns: to_unix_ns(extent.last_ns, offset),
        mntns_id: t.key.inum,
        mntns_nsid: t.key.nsid,
    }
}

fn list(recorder: &Recorder) -> Result<proto::TraceloopListResponse, DaemonError> {
    let offset = crate::operators::enrich::boot_offset_ns();
    let (per_container, max_containers) = recorder.bounds();
    let lost = |name: &str| recorder.loaded().bss_u64(name).unwrap_or(0);
    Ok(proto::TraceloopListResponse {
        traces: recorder
            .traces()
            .iter()
            .map(|t| trace_proto(recorder, t, offset))
            .collect(),
        dropped: recorder.dropped,
        records_per_container: per_container,
        max_containers,
        max_exited: recorder.max_dead as u64,
        record_size: recorder.record_size() as u32,
        lost_containers: lost(crate::gadget::spec::recorder_api::LOST_CONTAINERS),
        lost_records: lost(crate::gadget::spec::recorder_api::LOST_RECORDS),
    })
}

fn show(
    recorder: &mut Recorder,
    req: &proto::TraceloopShowRequest,
) -> Result<proto::TraceloopShowResponse, DaemonError> {
    let selector = req
        .trace
        .as_ref()
        .map(|t| t.selector.as_str())
        .unwrap_or("");
    let mut trace = find(recorder, selector)?;
    if trace.container.is_none() {
        recorder.name_late(trace.key);
        trace = find(recorder, &trace_id(&trace)).unwrap_or(trace);
    }
    let mode = if req.output.is_empty() {
        OutputMode::Columns
    } else {
        OutputMode::parse(&req.output).map_err(DaemonError::Invalid)?
    };
    let arch = recorder.arch();
    for name in &req.syscall_filters {
        if arch.syscall_nr(name).is_none() {
            return Err(DaemonError::Invalid(format!(
                "--syscall-filters: unknown syscall {name:?}"
            )));
        }
    }
    let mut events = recorder.events(&trace)?;
    if !req.syscall_filters.is_empty() {
        events.retain(|e| req.syscall_filters.contains(&e.name));
    }
    let mut text = Vec::new();
    write_trace(
        &mut text,
        mode,
        recorder.name(),
        trace.container.as_deref(),
        trace.key.inum,
        &events,
    )
    .map_err(|e| DaemonError::Internal(e.to_string()))?;
    let offset = crate::operators::enrich::boot_offset_ns();
    Ok(proto::TraceloopShowResponse {
        trace: Some(trace_proto(recorder, &trace, offset)),
        text: text.into(),
    })
}

fn close(recorder: &mut Recorder, selector: &str) -> Result<proto::Trace, DaemonError> {
    let trace = find(recorder, selector)?;
    let offset = crate::operators::enrich::boot_offset_ns();
    let info = trace_proto(recorder, &trace, offset);
    recorder.close(trace.key)?;
    Ok(info)
}
