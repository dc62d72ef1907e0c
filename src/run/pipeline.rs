//! One tracer's pipeline: decode → enrich → filter → output, driven by ring-buffer records.

use std::io;

use crate::event::{Align, Event, FieldDef, Schema};
use crate::gadget::decode::Decoder;
use crate::gadget::spec::{FieldKind, Semantic, Tracer};
use crate::gadget::Metadata;
use crate::operators::enrich::BasicEnricher;
use crate::output::Sink;

/// Decides from an event's mount namespace whether user space keeps it.
pub trait MntnsPolicy {
    fn keep(&mut self, mntns: u64, event: &mut Event) -> bool;
}

pub struct Pipeline<'a> {
    decoder: Decoder,
    enricher: BasicEnricher,
    mntns_field: Option<usize>,
    sink: Box<dyn Sink + 'a>,
    event: Event,
    pub emitted: u64,
    max_events: Option<u64>,
    pub stopped: bool,
    pub error: Option<io::Error>,
}

/// Builds the schema of a tracer: decoded fields, then the enrichers' fields, with gadget.yaml's
/// annotations applied to both. Returns the schema, the enricher, and yaml's field order.
pub fn build_schema(tracer: &Tracer, metadata: &Metadata) -> (Schema, BasicEnricher, Vec<String>) {
    let mut schema = Schema { name: tracer.name.clone(), fields: Vec::new() };
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
        if f.name.ends_with("_raw") || f.semantic == Semantic::MntnsId {
            def.hidden = true;
        }
        schema.push(def);
        if f.semantic != Semantic::Plain {
            typed.push((i, f.semantic));
        }
    }
    let enricher = BasicEnricher::new(&mut schema, &typed);
    let metas = metadata.fields(&tracer.name);
    for m in &metas {
        if let Some(i) = schema.index(&m.name) {
            for (k, v) in &m.annotations {
                schema.fields[i].annotate(k, v);
            }
        }
    }
    (schema, enricher, metas.into_iter().map(|m| m.name).collect())
}

impl<'a> Pipeline<'a> {
    pub fn new(
        tracer: &Tracer,
        enricher: BasicEnricher,
        sink: Box<dyn Sink + 'a>,
        max_events: Option<u64>,
    ) -> Self {
        let mntns_field = tracer.layout.fields.iter().position(|f| f.semantic == Semantic::MntnsId);
        Pipeline {
            decoder: Decoder::new(tracer.layout.clone()),
            enricher,
            mntns_field,
            sink,
            event: Event { values: Vec::with_capacity(tracer.layout.fields.len() + 16) },
            emitted: 0,
            max_events,
            stopped: false,
            error: None,
        }
    }

    /// Handles one ring-buffer record; returns what libbpf's callback wants (0 = go on).
    pub fn on_record(&mut self, data: &[u8], policy: &mut dyn MntnsPolicy) -> i32 {
        if self.stopped {
            return 0;
        }
        self.event.values.clear();
        self.decoder.decode(data, &mut self.event.values);
        if let Some(i) = self.mntns_field {
            let mntns = self.event.get(i).as_u64().unwrap_or(0);
            if !policy.keep(mntns, &mut self.event) {
                return 0;
            }
        }
        self.enricher.process(&mut self.event);
        self.emit_current()
    }

    /// Sends an already decoded and enriched event (e.g. one held back and released later).
    pub fn emit(&mut self, event: Event) -> i32 {
        self.event = event;
        self.emit_current()
    }

    fn emit_current(&mut self) -> i32 {
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
