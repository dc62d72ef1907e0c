//! One tracer's pipeline: decode → enrich → filter → output, driven by ring-buffer records.

use std::collections::HashMap;
use std::io;

use crate::event::{Align, Event, FieldDef, Schema};
use crate::gadget::decode::Decoder;
use crate::gadget::spec::{FieldKind, Semantic, Tracer};
use crate::gadget::Metadata;
use crate::operators::containers::ContainerFields;
use crate::operators::enrich::BasicEnricher;
use crate::operators::filter::Filter;
use crate::operators::process::{Lineage, LineageOptions, ProcessCache};
use crate::output::Sink;

use super::selection::{Decision, Released, Selection};
use crate::containers::MntnsKey;

pub struct Pipeline<'a> {
    decoder: Decoder,
    /// Exec ids and parents (`gadget_exec_key`), with the run's process cache.
    lineage: Option<(Lineage, Option<&'a std::cell::RefCell<ProcessCache>>)>,
    enricher: BasicEnricher,
    containers: ContainerFields,
    mntns_field: Option<usize>,
    /// `gadget_mntns_nsid`: without it namespaces are told apart by inode only.
    nsid_field: Option<usize>,
    pid_field: Option<usize>,
    /// Events of mount namespaces not resolved yet, in arrival order.
    held: HashMap<MntnsKey, Vec<Event>>,
    /// Events released as "not a container" because no runtime claimed their namespace.
    pub unclaimed_events: u64,
    sink: Box<dyn Sink + 'a>,
    event: Event,
    pub emitted: u64,
    max_events: Option<u64>,
    filter: Option<Filter>,
    pub stopped: bool,
    pub error: Option<io::Error>,
    /// An internal data source (gadget.yaml `internal: true`): its records only update the
    /// process cache; nothing is output.
    internal: bool,
}

/// The sink of an internal data source: nothing is shown.
pub struct NullSink;

impl crate::output::Sink for NullSink {
    fn event(&mut self, _event: &Event) -> io::Result<bool> {
        Ok(true)
    }
    fn lost(&mut self, _map: &str, _count: u64) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Builds the schema of a tracer: decoded fields, then the enrichers' fields, with gadget.yaml's
/// annotations applied to both. Returns the schema, the enrichers, and yaml's field order.
pub fn build_schema(tracer: &Tracer, metadata: &Metadata) -> (Schema, Enrichers, Vec<String>) {
    build_schema_with(tracer, metadata, LineageOptions::default())
}

/// [`build_schema`] with the lineage fields a run asked for (`--parent`, `--ancestors`).
pub fn build_schema_with(
    tracer: &Tracer,
    metadata: &Metadata,
    lineage: LineageOptions,
) -> (Schema, Enrichers, Vec<String>) {
    let mut schema = Schema {
        name: tracer.name.clone(),
        fields: Vec::new(),
    };
    let mut typed = Vec::new();
    for (i, f) in tracer.layout.fields.iter().enumerate() {
        let mut def = FieldDef::new(&f.name);
        match f.kind {
            FieldKind::Int { .. } => {
                def.width = 10;
                def.align = Align::Right;
            }
            FieldKind::Bool => def.width = 5,
            FieldKind::StrList { .. } => def.width = 40,
            _ => {}
        }
        if f.name.ends_with("_raw") || matches!(f.semantic, Semantic::MntnsId | Semantic::MntnsNsid)
        {
            def.hidden = true;
        }
        schema.push(def);
        if f.semantic != Semantic::Plain {
            typed.push((i, f.semantic));
        }
    }
    let basic = BasicEnricher::new(&mut schema, &typed);
    let containers = typed
        .iter()
        .any(|(_, s)| *s == Semantic::MntnsId)
        .then(|| ContainerFields::add(&mut schema));
    let lineage = typed
        .iter()
        .any(|(_, s)| *s == Semantic::ExecKey)
        .then(|| Lineage::add(&mut schema, lineage))
        .flatten();
    let metas = metadata.fields(&tracer.name);
    // A template first, then the width, then its bounds: whatever order the yaml lists them.
    let rank = |k: &str| match k {
        "template" => 0,
        "columns.width" => 1,
        "columns.minwidth" | "columns.maxwidth" => 2,
        _ => 3,
    };
    for m in &metas {
        let Some(i) = schema.index(&m.name) else {
            crate::gadget::metadata::debug(&format!(
                "gadget.yaml: data source {}: field {} is not in the event: its annotations are ignored",
                tracer.name, m.name
            ));
            continue;
        };
        let mut annotations: Vec<&(String, String)> = m.annotations.iter().collect();
        annotations.sort_by_key(|(k, _)| rank(k));
        for (k, v) in annotations {
            if !schema.fields[i].annotate(k, v) {
                crate::gadget::metadata::debug(&format!(
                    "gadget.yaml: data source {}: field {}: annotation {k}: {v:?} is not one ig uses; ignored",
                    tracer.name, m.name
                ));
            }
        }
    }
    (
        schema,
        Enrichers {
            basic,
            containers,
            lineage,
        },
        metas.into_iter().map(|m| m.name).collect(),
    )
}

/// The enrichers a schema was built with.
pub struct Enrichers {
    pub basic: BasicEnricher,
    /// Present when events carry a mount namespace id.
    pub containers: Option<ContainerFields>,
    /// Present when events carry a `gadget_exec_key`.
    pub lineage: Option<Lineage>,
}

impl<'a> Pipeline<'a> {
    pub fn new(
        tracer: &Tracer,
        enrichers: Enrichers,
        sink: Box<dyn Sink + 'a>,
        max_events: Option<u64>,
        filter: Option<Filter>,
        cache: Option<&'a std::cell::RefCell<ProcessCache>>,
    ) -> Self {
        let fields = &tracer.layout.fields;
        let mntns_field = fields.iter().position(|f| f.semantic == Semantic::MntnsId);
        let nsid_field = fields
            .iter()
            .position(|f| f.semantic == Semantic::MntnsNsid);
        // `pid`, else the first `gadget_pid` field (Inspektor Gadget's `proc.pid`).
        let pid_field = fields
            .iter()
            .position(|f| f.name == "pid")
            .or_else(|| fields.iter().position(|f| f.semantic == Semantic::Pid));
        Pipeline {
            lineage: enrichers.lineage.map(|l| (l, cache)),
            decoder: Decoder::new(tracer.layout.clone()),
            enricher: enrichers.basic,
            containers: enrichers.containers.unwrap_or(ContainerFields::NONE),
            mntns_field,
            nsid_field,
            pid_field,
            held: HashMap::new(),
            unclaimed_events: 0,
            sink,
            event: Event {
                values: Vec::with_capacity(tracer.layout.fields.len() + 16),
            },
            emitted: 0,
            max_events,
            filter,
            stopped: false,
            error: None,
            internal: false,
        }
    }

    /// An internal data source's pipeline: records update the process cache, nothing else.
    pub fn internal(
        tracer: &Tracer,
        enrichers: Enrichers,
        cache: Option<&'a std::cell::RefCell<ProcessCache>>,
    ) -> Self {
        let mut p = Pipeline::new(tracer, enrichers, Box::new(NullSink), None, None, cache);
        p.internal = true;
        p
    }

    /// Handles one ring-buffer record; returns what libbpf's callback wants (0 = go on).
    pub fn on_record(&mut self, data: &[u8], selection: &mut Selection) -> i32 {
        if self.stopped {
            return 0;
        }
        // The event's slots are overwritten in place (decoded fields here, derived ones by the
        // enrichers), so their string buffers are reused from one record to the next.
        let n = self.decoder.layout().fields.len();
        if self.event.values.len() < n {
            self.event.values.resize(n, crate::event::Value::Null);
        }
        self.decoder.decode_into(data, &mut self.event.values[..n]);
        // In ring order, before the event may be held for its container or filtered out.
        if let Some((lineage, Some(cache))) = &self.lineage {
            lineage.observe(&self.event, &mut cache.borrow_mut());
        }
        if self.internal {
            return 0;
        }
        let Some(i) = self.mntns_field else {
            self.fill_lineage();
            self.enricher.process(&mut self.event);
            return self.emit_current();
        };
        let mntns = MntnsKey::new(
            self.event.get(i).as_u64().unwrap_or(0),
            self.nsid_field
                .and_then(|f| self.event.get(f).as_u64())
                .unwrap_or(0),
        );
        let pid = self
            .pid_field
            .and_then(|p| self.event.get(p).as_u64())
            .unwrap_or(0) as u32;
        if let Some(held) = self.held.get_mut(&mntns) {
            held.push(self.event.clone());
            // Its pid is one more clue for the namespace's resolution.
            selection.decide(mntns, pid);
            return 0;
        }
        match selection.decide(mntns, pid) {
            Decision::Drop => 0,
            Decision::Hold => {
                self.held.entry(mntns).or_default().push(self.event.clone());
                0
            }
            Decision::Keep(container) => {
                self.enrich(container.as_deref());
                self.emit_current()
            }
        }
    }

    fn enrich(&mut self, container: Option<&crate::containers::Container>) {
        match container {
            Some(c) => self.containers.fill(&mut self.event, c),
            None => self.containers.clear(&mut self.event),
        }
        self.fill_lineage();
        self.enricher.process(&mut self.event);
    }

    fn fill_lineage(&mut self) {
        if let Some((lineage, cache)) = &mut self.lineage {
            match cache {
                Some(cache) => lineage.fill(&mut self.event, Some(&mut cache.borrow_mut())),
                None => lineage.fill(&mut self.event, None),
            }
        }
    }

    /// Lets the held events of a mount namespace go, now that it is resolved.
    pub fn release(&mut self, released: &Released) {
        let Some(events) = self.held.remove(&released.mntns) else {
            return;
        };
        if released.unclaimed {
            self.unclaimed_events += events.len() as u64;
        }
        let Decision::Keep(container) = &released.decision else {
            return;
        };
        for event in events {
            if self.stopped {
                break;
            }
            self.event = event;
            self.enrich(container.as_deref());
            self.emit_current();
        }
    }

    fn emit_current(&mut self) -> i32 {
        if self
            .filter
            .as_ref()
            .is_some_and(|f| !f.matches(&self.event))
        {
            return 0;
        }
        match self.sink.event(&self.event) {
            Ok(true) => {
                self.emitted += 1;
                if self.max_events.is_some_and(|m| self.emitted >= m) {
                    self.stopped = true;
                }
                0
            }
            Ok(false) => {
                self.stopped = true;
                0
            }
            Err(e) => {
                self.stopped = true;
                self.error = Some(e);
                -1
            }
        }
    }

    /// Lets the sink print its header before any event (see [`crate::output::Sink::begin`]).
    pub fn begin(&mut self) {
        if let Err(e) = self.sink.begin() {
            self.stopped = true;
            self.error.get_or_insert(e);
        }
    }

    pub fn flush(&mut self) {
        if let Err(e) = self.sink.flush() {
            self.stopped = true;
            self.error.get_or_insert(e);
        }
    }

    pub fn lost(&mut self, map: &str, count: u64) {
        if let Err(e) = self.sink.lost(map, count) {
            self.error.get_or_insert(e);
        }
    }

    pub fn finish(&mut self) -> Option<io::Error> {
        if let Err(e) = self.sink.finish() {
            self.error.get_or_insert(e);
        }
        self.error.take()
    }
}
