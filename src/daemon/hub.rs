//! One run's events, fanned out to the clients that watch it.
//!
//! The run thread never waits for a client: every client has its own queue, bounded by
//! [`Hub::client_buffer`] events. A batch that does not fit is not queued; the client is told
//! how many events it missed (`Missed`) as soon as it reads again, and the instance counts them.
//! The hub also keeps the last events for clients that attach later (`ig attach`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use super::lines_pipe::{LinesPipeWriter, Wrote};
use super::proto::{self, run_event::Kind};

/// Events a hub keeps for clients that attach later.
pub const HISTORY_EVENTS: u64 = 1024;
/// Events queued for one client before what does not fit is counted as missed.
pub const CLIENT_BUFFER_EVENTS: u64 = 16 * 1024;

/// What an instance has produced so far.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events the run emitted.
    pub events: AtomicU64,
    /// Events the kernel dropped (ring buffer full).
    pub lost: AtomicU64,
    /// Events clients missed because they read too slowly, summed over clients.
    pub missed_by_clients: AtomicU64,
}

/// Where a run is: loading, running (programs attached), or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Running,
    Ended,
}

pub struct Hub {
    state: Mutex<State>,
    phase: tokio::sync::watch::Sender<Phase>,
    pub counters: Counters,
    history_max: u64,
    client_buffer: u64,
    /// Batches are compact JSON lines (`RunEvent.json_lines`), not encoded `EventBatch`es.
    json_lines: bool,
    /// The client's lines pipe, passed over the socket: the lines are written there, not
    /// sent (a client's `-o json` run on this machine).
    /// Inner `None` once the run ended ([`Hub::end`]): the descriptor is closed then, not when
    /// the hub goes (it lives on while its stream is read).
    lines_pipe: Option<Mutex<Option<LinesPipeWriter>>>,
    /// The daemon is stopping: the end of the run no longer waits for the pipe's reader.
    lines_pipe_abandoned: AtomicBool,
}

/// What a batch's bytes are, and so which `RunEvent` kind carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchForm {
    /// An encoded `EventBatch` of streamed events (`RunEvent.events`).
    Events,
    /// Compact JSON lines (`RunEvent.json_lines`): events, or arrays one per line.
    JsonLines,
    /// One whole array as an encoded `EventBatch` (`RunEvent.array`).
    Array,
}

#[derive(Default)]
struct State {
    datasources: Vec<proto::RunEvent>,
    /// Batches with their event counts, oldest first.
    history: VecDeque<Kept>,
    history_events: u64,
    clients: Vec<Arc<Client>>,
    end: Option<proto::RunEvent>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder leaves consistent data here (plain pushes and counters).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn event(kind: Kind) -> proto::RunEvent {
    proto::RunEvent { kind: Some(kind) }
}

fn batch_event(form: BatchForm, bytes: Bytes) -> proto::RunEvent {
    event(match form {
        BatchForm::Events => Kind::Events(bytes),
        BatchForm::JsonLines => Kind::JsonLines(bytes),
        BatchForm::Array => Kind::Array(bytes),
    })
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(HISTORY_EVENTS, CLIENT_BUFFER_EVENTS)
    }
}

impl Hub {
    pub fn new(history_max: u64, client_buffer: u64) -> Self {
        Hub {
            state: Mutex::new(State::default()),
            phase: tokio::sync::watch::channel(Phase::Starting).0,
            counters: Counters::default(),
            history_max,
            client_buffer,
            json_lines: false,
            lines_pipe: None,
            lines_pipe_abandoned: AtomicBool::new(false),
        }
    }

    /// A JSON-lines hub whose lines go into the client's lines pipe (see [`LinesPipeWriter`]).
    pub fn with_lines_pipe(mut self, out: LinesPipeWriter) -> Self {
        self.json_lines = true;
        self.lines_pipe = Some(Mutex::new(Some(out)));
        self
    }

    /// Whether lines go into the client's lines pipe rather than over the socket.
    pub fn writes_lines_pipe(&self) -> bool {
        self.lines_pipe.is_some()
    }

    /// Writes `count` events' lines into the client's lines pipe (queued when its reader is
    /// behind, missed and told when the queue is full). Errors: the file's, and `BrokenPipe`
    /// when the reader is gone (a run ends on it, as a local run does). Without a passed
    /// pipe, the lines are a batch for the clients.
    pub(crate) fn lines(&self, count: u64, lines: &[u8]) -> std::io::Result<()> {
        let Some(out) = &self.lines_pipe else {
            self.batch(count, Bytes::copy_from_slice(lines));
            return Ok(());
        };
        let wrote = match lock(out).as_mut() {
            Some(out) => out.write(count, lines)?,
            None => Wrote::Closed,
        };
        self.wrote(wrote)
    }

    /// Writes what the client's lines pipe has not taken yet, as far as it takes it now.
    pub(crate) fn drain_lines_pipe(&self) -> std::io::Result<()> {
        let Some(out) = &self.lines_pipe else {
            return Ok(());
        };
        let wrote = match lock(out).as_mut() {
            Some(out) => out.drain()?,
            None => Wrote::Closed,
        };
        self.wrote(wrote)
    }

    fn wrote(&self, wrote: Wrote) -> std::io::Result<()> {
        match wrote {
            Wrote::Open { told } => {
                self.tell_missed(told);
                Ok(())
            }
            Wrote::Closed => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// The run's end: the client's lines pipe gets what is queued, waiting for its reader as a
    /// local run waits for its stdout, as long as the client is there (a second Ctrl-C leaves)
    /// and the daemon is not stopping; what is left is told as missed.
    pub(crate) fn finish_lines_pipe(&self) -> std::io::Result<()> {
        let Some(out) = &self.lines_pipe else {
            return Ok(());
        };
        let missed = match lock(out).as_mut() {
            Some(out) => out.finish(|| {
                self.clients() > 0 && !self.lines_pipe_abandoned.load(Ordering::Relaxed)
            })?,
            None => 0,
        };
        self.tell_missed(missed);
        Ok(())
    }

    /// The daemon is stopping: [`Hub::finish_lines_pipe`] stops waiting for the reader.
    pub(crate) fn abandon_lines_pipe(&self) {
        self.lines_pipe_abandoned.store(true, Ordering::Relaxed);
    }

    fn tell_missed(&self, count: u64) {
        if count > 0 {
            self.counters
                .missed_by_clients
                .fetch_add(count, Ordering::Relaxed);
            self.control(Kind::Missed(proto::Missed { count }));
        }
    }

    /// A hub whose batches are JSON lines rendered by the run (a client's `-o json` run).
    pub fn with_json_lines(mut self, on: bool) -> Self {
        self.json_lines = on;
        self
    }

    /// Whether the run renders its events as JSON lines for its clients.
    pub fn json_lines(&self) -> bool {
        self.json_lines
    }

    /// Events queued for one client at most.
    pub fn client_buffer(&self) -> u64 {
        self.client_buffer
    }

    /// Clients watching now.
    pub fn clients(&self) -> usize {
        let mut st = lock(&self.state);
        st.clients.retain(|c| !c.gone.load(Ordering::Relaxed));
        st.clients.len()
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Waits until the run is running or over, and says which.
    pub async fn started(&self) -> Phase {
        let mut rx = self.phase.subscribe();
        let phase = rx.wait_for(|p| *p != Phase::Starting).await.map(|p| *p);
        phase.unwrap_or(Phase::Ended)
    }

    pub(crate) fn set_running(&self) {
        self.phase.send_if_modified(|p| {
            let starting = *p == Phase::Starting;
            if starting {
                *p = Phase::Running;
            }
            starting
        });
    }

    /// A new client. With `history`, it first gets the kept events (between two `History`
    /// events: how many, then `live`); the schemas always come first.
    pub fn subscribe(&self, history: bool) -> Subscription {
        let client = Arc::new(Client::default());
        let mut st = lock(&self.state);
        {
            let mut q = lock(&client.queue);
            q.frames
                .extend(st.datasources.iter().cloned().map(Frame::Control));
            if history {
                q.frames
                    .push_back(Frame::Control(event(Kind::History(proto::History {
                        events: st.history_events,
                        live: false,
                    }))));
                for kept in &st.history {
                    q.frames
                        .push_back(Frame::Control(batch_event(kept.form, kept.bytes.clone())));
                }
                q.frames
                    .push_back(Frame::Control(event(Kind::History(proto::History {
                        events: 0,
                        live: true,
                    }))));
            }
            if let Some(end) = &st.end {
                q.frames.push_back(Frame::Control(end.clone()));
                q.ended = true;
            }
        }
        if st.end.is_none() {
            st.clients.push(client.clone());
        }
        Subscription {
            client,
            on_drop: None,
        }
    }

    pub(crate) fn datasource(&self, ds: proto::DataSource) {
        let ev = event(Kind::Datasource(ds));
        let mut st = lock(&self.state);
        st.datasources.push(ev.clone());
        for c in live(&mut st) {
            c.push(Frame::Control(ev.clone()));
        }
    }

    /// An encoded `EventBatch` of `count` events, or their JSON lines (see [`Hub::json_lines`]).
    pub(crate) fn batch(&self, count: u64, bytes: Bytes) {
        let form = if self.json_lines {
            BatchForm::JsonLines
        } else {
            BatchForm::Events
        };
        self.keep_and_send(form, count, bytes, None);
    }

    /// One whole array of data source `datasource` (`form`: `Array`, or `JsonLines` for a
    /// JSON-lines hub). The history keeps only the data source's latest array: a client that
    /// attaches sees the last read, then live ones.
    pub(crate) fn array(&self, datasource: u32, form: BatchForm, count: u64, bytes: Bytes) {
        self.keep_and_send(form, count, bytes, Some(datasource));
    }

    /// Keeps a batch in the history (the most recent batches up to its size, and always the
    /// last one: an array larger than the history is still shown to a client that attaches)
    /// and queues it for every client.
    fn keep_and_send(&self, form: BatchForm, count: u64, bytes: Bytes, array_of: Option<u32>) {
        let mut st = lock(&self.state);
        if array_of.is_some() {
            let before = st.history_events;
            let mut dropped = 0;
            st.history.retain(|k| {
                let older = k.array_of == array_of;
                if older {
                    dropped += k.count;
                }
                !older
            });
            st.history_events = before - dropped;
        }
        st.history.push_back(Kept {
            form,
            count,
            bytes: bytes.clone(),
            array_of,
        });
        st.history_events += count;
        while st.history_events > self.history_max && st.history.len() > 1 {
            let Some(k) = st.history.pop_front() else {
                break;
            };
            st.history_events -= k.count;
        }
        for c in live(&mut st) {
            c.push_batch(
                form,
                count,
                bytes.clone(),
                self.client_buffer,
                &self.counters,
            );
        }
    }

    pub(crate) fn control(&self, kind: Kind) {
        let ev = event(kind);
        let mut st = lock(&self.state);
        for c in live(&mut st) {
            c.push(Frame::Control(ev.clone()));
        }
    }

    /// The run is over: every client gets `End` after what is queued, and its stream ends.
    pub(crate) fn end(&self, error: Option<String>) {
        if let Some(out) = &self.lines_pipe {
            // Closed before the client hears of the end: a reader of the pipe sees its end
            // once the client exits.
            lock(out).take();
        }
        let ev = event(Kind::End(proto::End {
            error: error.unwrap_or_default(),
            events: self.counters.events.load(Ordering::Relaxed),
        }));
        let mut st = lock(&self.state);
        st.end = Some(ev.clone());
        for c in std::mem::take(&mut st.clients) {
            let mut q = lock(&c.queue);
            // What the client missed since it was last told comes before the end.
            if q.missed > 0 {
                let count = std::mem::take(&mut q.missed);
                q.frames
                    .push_back(Frame::Control(event(Kind::Missed(proto::Missed { count }))));
            }
            q.frames.push_back(Frame::Control(ev.clone()));
            q.ended = true;
            drop(q);
            c.notify.notify_one();
        }
        drop(st);
        self.phase.send_replace(Phase::Ended);
    }
}

fn live(st: &mut State) -> &[Arc<Client>] {
    st.clients.retain(|c| !c.gone.load(Ordering::Relaxed));
    &st.clients
}

/// A batch the history keeps.
struct Kept {
    form: BatchForm,
    count: u64,
    bytes: Bytes,
    /// The data source whose array it is; none for streamed events.
    array_of: Option<u32>,
}

enum Frame {
    Control(proto::RunEvent),
    Batch(BatchForm, u64, Bytes),
}

#[derive(Default)]
struct Client {
    queue: Mutex<Queue>,
    notify: Notify,
    gone: AtomicBool,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Frame>,
    queued_events: u64,
    /// Missed since the client was last told.
    missed: u64,
    ended: bool,
}

impl Client {
    fn push(&self, frame: Frame) {
        lock(&self.queue).frames.push_back(frame);
        self.notify.notify_one();
    }

    /// Queues a batch unless it would take the client past `limit` queued events; a client
    /// with nothing queued takes any batch (an array larger than the limit is not always
    /// missed).
    fn push_batch(
        &self,
        form: BatchForm,
        count: u64,
        bytes: Bytes,
        limit: u64,
        counters: &Counters,
    ) {
        let mut q = lock(&self.queue);
        if q.queued_events > 0 && q.queued_events + count > limit {
            q.missed += count;
            counters
                .missed_by_clients
                .fetch_add(count, Ordering::Relaxed);
        } else {
            if q.missed > 0 {
                let missed = std::mem::take(&mut q.missed);
                q.frames
                    .push_back(Frame::Control(event(Kind::Missed(proto::Missed {
                        count: missed,
                    }))));
            }
            q.frames.push_back(Frame::Batch(form, count, bytes));
            q.queued_events += count;
        }
        drop(q);
        self.notify.notify_one();
    }
}

/// One client's view of a hub. Dropping it (the client went away) unsubscribes it and runs
/// its `on_drop` (a client's own run stops with it).
pub struct Subscription {
    client: Arc<Client>,
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Subscription {
    pub fn on_drop(mut self, f: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.on_drop = Some(Box::new(f));
        self
    }

    /// The next event for this client; `None` once the run ended and everything was read.
    pub async fn next(&mut self) -> Option<proto::RunEvent> {
        loop {
            {
                let mut q = lock(&self.client.queue);
                match q.frames.pop_front() {
                    Some(Frame::Control(ev)) => return Some(ev),
                    Some(Frame::Batch(form, n, bytes)) => {
                        q.queued_events -= n;
                        return Some(batch_event(form, bytes));
                    }
                    None if q.missed > 0 => {
                        let count = std::mem::take(&mut q.missed);
                        return Some(event(Kind::Missed(proto::Missed { count })));
                    }
                    None if q.ended => return None,
                    None => {}
                }
            }
            self.client.notify.notified().await;
        }
    }

    /// As a stream of gRPC messages.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<proto::RunEvent, tonic::Status>> + Send + 'static
    {
        futures_util::stream::unfold(
            self,
            |mut s| async move { s.next().await.map(|ev| (Ok(ev), s)) },
        )
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.client.gone.store(true, Ordering::Relaxed);
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ev: &proto::RunEvent) -> &Kind {
        ev.kind.as_ref().expect("every event has a kind")
    }

    #[tokio::test]
    async fn a_slow_client_misses_batches_and_is_told_how_many() {
        let hub = Hub::new(100, 10);
        let mut slow = hub.subscribe(false);
        for _ in 0..5 {
            hub.batch(4, Bytes::from_static(b"x"));
        }
        // 10 fit (two batches of 4; a third would make 12); 12 missed.
        let mut got = 0;
        for _ in 0..2 {
            assert!(matches!(kind(&slow.next().await.unwrap()), Kind::Events(_)));
            got += 4;
        }
        match kind(&slow.next().await.unwrap()) {
            Kind::Missed(m) => assert_eq!(m.count, 12),
            other => panic!("expected Missed, got {other:?}"),
        }
        assert_eq!(got, 8);
        assert_eq!(hub.counters.missed_by_clients.load(Ordering::Relaxed), 12);
        hub.end(None);
        assert!(matches!(kind(&slow.next().await.unwrap()), Kind::End(_)));
        assert!(slow.next().await.is_none());
    }

    #[tokio::test]
    async fn attach_gets_the_kept_events_then_live_ones() {
        let hub = Hub::new(5, 100);
        hub.datasource(proto::DataSource::default());
        for _ in 0..4 {
            hub.batch(2, Bytes::from_static(b"old"));
        }
        let mut late = hub.subscribe(true);
        hub.batch(1, Bytes::from_static(b"new"));
        let mut kinds = Vec::new();
        hub.end(None);
        while let Some(ev) = late.next().await {
            kinds.push(kind(&ev).clone());
        }
        assert!(matches!(kinds[0], Kind::Datasource(_)));
        // The history holds at most 5 events: the last two batches of 2.
        assert!(matches!(
            kinds[1],
            Kind::History(proto::History {
                events: 4,
                live: false
            })
        ));
        assert_eq!(kinds[2], Kind::Events(Bytes::from_static(b"old")));
        assert_eq!(kinds[3], Kind::Events(Bytes::from_static(b"old")));
        assert!(matches!(
            kinds[4],
            Kind::History(proto::History { live: true, .. })
        ));
        assert_eq!(kinds[5], Kind::Events(Bytes::from_static(b"new")));
        assert!(matches!(kinds[6], Kind::End(_)));
        assert_eq!(kinds.len(), 7);
    }

    #[tokio::test]
    async fn arrays_are_whole_and_the_history_keeps_each_sources_last() {
        // History of 5 events, clients queue 3: arrays of 10 rows still go whole.
        let hub = Hub::new(5, 3);
        let mut live = hub.subscribe(false);
        hub.array(0, BatchForm::Array, 10, Bytes::from_static(b"a0"));
        hub.array(1, BatchForm::Array, 1, Bytes::from_static(b"b0"));
        hub.array(0, BatchForm::Array, 10, Bytes::from_static(b"a1"));
        let mut late = hub.subscribe(true);
        hub.end(None);
        let mut got = Vec::new();
        while let Some(ev) = live.next().await {
            got.push(kind(&ev).clone());
        }
        // The first array fits an empty queue; the next two do not fit behind it.
        assert_eq!(got[0], Kind::Array(Bytes::from_static(b"a0")));
        assert!(matches!(got[1], Kind::Missed(proto::Missed { count: 11 })));
        let mut kept = Vec::new();
        while let Some(ev) = late.next().await {
            if let Kind::Array(b) = kind(&ev) {
                kept.push(b.clone());
            }
        }
        // Source 0's older array is gone; source 1's is too (5 events at most, the last
        // array always kept).
        assert_eq!(kept, vec![Bytes::from_static(b"a1")]);
    }

    #[tokio::test]
    async fn a_dropped_client_is_forgotten_and_runs_its_hook() {
        let hub = Hub::default();
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let sub = hub
            .subscribe(false)
            .on_drop(move || flag.store(true, Ordering::Relaxed));
        assert_eq!(hub.clients(), 1);
        drop(sub);
        assert!(stopped.load(Ordering::Relaxed));
        assert_eq!(hub.clients(), 0);
    }
}
