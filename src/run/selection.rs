//! Which mount namespaces' events are shown, and with which container.
//!
//! Namespaces are keyed by inode *and* id ([`MntnsKey`]): the kernel gives a dead namespace's
//! inode to the next one at once, so a verdict or a name found for one inode must never pass to
//! a later namespace.
//!
//! The BPF filter map drops what is known to be unwanted. A namespace BPF has no verdict for (a
//! container that just started, before its runtime announced it) reaches user space, where its
//! events are held back until it is resolved, retried every [`RETRY_EVERY`]:
//! 1. a live process of the namespace: its cgroup, and the runtimes, name the container;
//! 2. the cgroup BPF noted while the namespace's processes lived (`gadget_mntns_notes`), or the
//!    init pid a runtime reported: these name a container whose processes are all gone (one
//!    that lived a few milliseconds);
//! 3. a live process in no container's cgroup: not a container.
//!
//! Then its events are released in order and the verdict goes to the map, so later ones are
//! filtered in the kernel. A namespace nothing claims within [`HOLD_MAX`] ([`HOLD_MAX_CONTAINER`]
//! when its processes are in a container's cgroup) is released as "not a container" and counted
//! ([`Selection::unclaimed`]), never silently.

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::containers::procfs;
use crate::containers::{Container, ContainerCollection, ContainerEvent, MntnsKey, MntnsMap};
use crate::gadget::loader::MntnsNotes;

/// How long events of an unknown mount namespace wait for it to be resolved.
pub const HOLD_MAX: Duration = Duration::from_millis(1500);
/// How long they wait when their processes are in a container's cgroup but its runtime has not
/// described it yet: it is a container, and a loaded dockerd may take seconds to answer while
/// it starts one (the entrypoint's exec must not be shown as the host's, or dropped by `-c`).
pub const HOLD_MAX_CONTAINER: Duration = Duration::from_secs(5);
/// How often an unresolved namespace is tried again (its runtime may announce it meanwhile).
const RETRY_EVERY: Duration = Duration::from_millis(50);
/// How long a removed container's verdict stays in the map (its last events may still come).
const FORGET_AFTER: Duration = Duration::from_secs(5);
/// How long a container known only by its init pid (gone before its namespace was seen) may
/// claim a namespace by that pid: pids are reused.
const CLAIM_PID_WITHIN: Duration = Duration::from_secs(10);
/// Pids of a held namespace kept as clues.
const PIDS_KEPT: usize = 16;

#[derive(Debug, Clone)]
pub enum Decision {
    Keep(Option<Arc<Container>>),
    Drop,
    Hold,
}

#[derive(Clone)]
enum Known {
    Container(Arc<Container>),
    NotContainer,
}

/// What a namespace's processes told about it.
enum Resolution {
    Container(Arc<Container>),
    /// Not in a container's cgroup and not a runtime setting one up: a host process in a
    /// namespace of its own (a service with a private /tmp, a sandbox).
    Plain,
    Unknown,
    /// In a container's cgroup; its runtime has not spoken yet.
    AwaitingRuntime,
}

/// What resolving a namespace can go on: pids seen in it, the cgroup BPF noted, and whether
/// to look through /proc for another process of it (a scan of every process: not every try).
struct Clues {
    pids: Vec<u32>,
    cgroup: Option<String>,
    scan: bool,
}

/// How often a held namespace's resolution scans /proc for a live process of it.
const SCAN_EVERY: Duration = Duration::from_millis(250);

/// Runtimes' helpers that run in a container's namespaces before it has its cgroup.
const RUNTIME_COMMS: [&str; 5] = ["runc", "crun", "containerd-shim", "conmon", "runc:["];

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("{}/{pid}/comm", procfs::proc_root()))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("{}/{pid}/stat", procfs::proc_root())).ok()?;
    // The comm may hold spaces and parentheses: the fields follow the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// How often decisions about dead namespaces are dropped.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);

fn proc_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir(procfs::proc_root())
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

/// The mount namespace inodes some process lives in.
pub(super) fn live_namespaces() -> std::collections::HashSet<u64> {
    proc_pids()
        .filter_map(|pid| procfs::mntns_of(pid).ok())
        .collect()
}

/// The mount namespaces some process lives in, by inode and id (the id is 0 where the kernel
/// cannot tell it, see `procfs::mntns_key_of`).
pub(crate) fn live_namespace_keys() -> std::collections::HashSet<MntnsKey> {
    proc_pids()
        .filter_map(|pid| procfs::mntns_key_of(pid).ok())
        .collect()
}

/// A live process in a mount namespace (the one an event came from may have exited already).
fn any_pid_in(key: MntnsKey) -> Option<u32> {
    proc_pids().find(|&pid| {
        procfs::mntns_of(pid).ok() == Some(key.inum)
            && procfs::mntns_key_of(pid).is_ok_and(|k| k.matches(&key))
    })
}

fn in_namespace(pid: u32, key: MntnsKey) -> bool {
    procfs::mntns_key_of(pid).is_ok_and(|k| k.matches(&key))
}

async fn resolve(collection: &ContainerCollection, key: MntnsKey, clues: Clues) -> Resolution {
    let live = clues
        .pids
        .iter()
        .rev()
        .copied()
        .find(|&p| in_namespace(p, key))
        .or_else(|| clues.scan.then(|| any_pid_in(key)).flatten());
    if let Some(pid) = live {
        if let Some(c) = collection.resolve_pid(pid).await {
            if c.mntns_key().matches(&key) {
                return Resolution::Container(c);
            }
        }
    }
    let mut hints = clues
        .cgroup
        .as_deref()
        .map(|path| procfs::parse_cgroup(&format!("0::{path}")))
        .unwrap_or_default();
    if let Some(pid) = live {
        for h in procfs::cgroup_hints(pid).await.unwrap_or_default() {
            if !hints.contains(&h) {
                hints.push(h);
            }
        }
    }
    for hint in &hints {
        if let Some(c) = collection.claim_cgroup(hint, &clues.pids) {
            return Resolution::Container(c);
        }
    }
    // Exited but not removed: the runtime still describes it (asked at the pace of the scans:
    // until its start event arrives, a removed container is unknown to it).
    for hint in hints.iter().filter(|_| clues.scan) {
        if let Some(c) = collection
            .describe(&hint.id, hint.namespace.as_deref())
            .await
        {
            return Resolution::Container(c);
        }
    }
    if let Some(c) = collection.claim_init_pid(&clues.pids, CLAIM_PID_WITHIN) {
        return Resolution::Container(c);
    }
    if !hints.is_empty() {
        return Resolution::AwaitingRuntime;
    }
    match live {
        Some(pid) => {
            let runtime_helper = [Some(pid), parent_of(pid)]
                .into_iter()
                .flatten()
                .any(|p| RUNTIME_COMMS.iter().any(|r| comm_of(p).starts_with(r)));
            if !runtime_helper && in_namespace(pid, key) {
                Resolution::Plain
            } else {
                Resolution::Unknown
            }
        }
        // Gone, and BPF saw its processes in a cgroup that is no container's.
        None if clues.cgroup.is_some() => Resolution::Plain,
        None => Resolution::Unknown,
    }
}

struct Pending {
    since: Instant,
    last_try: Instant,
    last_scan: Option<Instant>,
    resolving: bool,
    pids: Vec<u32>,
    /// Seen in a container's cgroup: held up to [`HOLD_MAX_CONTAINER`].
    in_container_cgroup: bool,
}

/// A namespace whose held events can go, and how.
pub struct Released {
    pub mntns: MntnsKey,
    pub decision: Decision,
    /// Nothing claimed it within [`HOLD_MAX`] ([`HOLD_MAX_CONTAINER`] for a container's
    /// cgroup): released as not a container.
    pub unclaimed: bool,
}

pub struct Selection {
    names: Vec<String>,
    host: bool,
    collection: Option<Arc<ContainerCollection>>,
    events: Option<broadcast::Receiver<ContainerEvent>>,
    runtime: Option<tokio::runtime::Handle>,
    notes: Option<MntnsNotes>,
    resolved_tx: mpsc::Sender<(MntnsKey, Resolution)>,
    resolved_rx: mpsc::Receiver<(MntnsKey, Resolution)>,
    known: MntnsMap<Known>,
    pending: HashMap<MntnsKey, Pending>,
    forget: Vec<(Instant, MntnsKey)>,
    host_mntns: Option<MntnsKey>,
    last_sweep: Instant,
    unclaimed: u64,
    /// Verdicts for the BPF map: `Some(keep)` to set, `None` to delete.
    pub map_updates: Vec<(MntnsKey, Option<bool>)>,
    /// Verdicts the BPF map did not take (full); they apply in user space only.
    pub verdicts_refused: u64,
}

impl Selection {
    pub fn new(
        names: Vec<String>,
        host: bool,
        host_mntns: Option<MntnsKey>,
        containers: Option<(Arc<ContainerCollection>, tokio::runtime::Handle)>,
        notes: Option<MntnsNotes>,
    ) -> Self {
        let (resolved_tx, resolved_rx) = mpsc::channel();
        let (collection, runtime) = match containers {
            Some((c, h)) => (Some(c), Some(h)),
            None => (None, None),
        };
        let mut s = Selection {
            names,
            host,
            events: collection.as_ref().map(|c| c.subscribe()),
            collection,
            runtime,
            notes,
            resolved_tx,
            resolved_rx,
            known: MntnsMap::default(),
            pending: HashMap::new(),
            forget: Vec::new(),
            host_mntns,
            last_sweep: Instant::now(),
            unclaimed: 0,
            map_updates: Vec::new(),
            verdicts_refused: 0,
        };
        if let Some(h) = host_mntns {
            s.known.insert(h, Known::NotContainer);
            s.map_updates.push((h, Some(host)));
        }
        for c in s.collection.as_ref().map(|c| c.all()).unwrap_or_default() {
            s.learn(c.mntns_key(), c);
        }
        s
    }

    pub fn selected(&self, c: &Container) -> bool {
        self.names.is_empty() || self.names.contains(&c.name)
    }

    fn is_live(&self, key: MntnsKey) -> bool {
        self.collection
            .as_ref()
            .is_some_and(|col| col.lookup_live_mntns(key).is_some())
    }

    /// Records that `key` is container `c`'s namespace.
    fn learn(&mut self, key: MntnsKey, c: Arc<Container>) {
        // An event from a gadget that carries no id: the container's own key is more precise.
        let key = if key.nsid == 0 && c.mntns_id == key.inum && c.mntns_nsid != 0 {
            c.mntns_key()
        } else {
            key
        };
        if !self.is_live(key) {
            // A container that is already gone (its last events are late): forget it soon, so
            // churn never grows the map.
            self.forget.push((Instant::now() + FORGET_AFTER, key));
        }
        self.map_updates.push((key, Some(self.selected(&c))));
        self.known.insert(key, Known::Container(c));
        self.settled(key);
    }

    fn not_container(&mut self, key: MntnsKey) {
        self.known.insert(key, Known::NotContainer);
        self.map_updates.push((key, Some(self.host)));
        self.settled(key);
    }

    /// BPF's note about a decided namespace is not needed any more.
    fn settled(&self, key: MntnsKey) {
        if let Some(notes) = &self.notes {
            notes.forget(key);
        }
    }

    fn verdict(&self, known: &Known) -> Decision {
        match known {
            Known::Container(c) if self.selected(c) => Decision::Keep(Some(c.clone())),
            Known::Container(_) => Decision::Drop,
            Known::NotContainer if self.host => Decision::Keep(None),
            Known::NotContainer => Decision::Drop,
        }
    }

    /// The decision for one event of namespace `key` from process `pid`.
    pub fn decide(&mut self, key: MntnsKey, pid: u32) -> Decision {
        if let Some(k) = self.known.get(&key) {
            return self.verdict(k);
        }
        if let Some(c) = self.collection.as_ref().and_then(|c| {
            // A removed container only where ids make the match exact.
            c.lookup_live_mntns(key).or_else(|| {
                c.lookup_mntns(key)
                    .filter(|c| key.nsid != 0 && c.mntns_nsid == key.nsid)
            })
        }) {
            self.learn(key, c.clone());
            return self.verdict(&Known::Container(c));
        }
        // No runtime to ask (none connected): nothing can claim the namespace.
        if self.runtime.is_none()
            || self
                .collection
                .as_ref()
                .is_none_or(|c| c.runtimes().is_empty())
        {
            self.not_container(key);
            return self.verdict(&Known::NotContainer);
        }
        let now = Instant::now();
        let pending = self.pending.entry(key).or_insert(Pending {
            since: now,
            last_try: now - RETRY_EVERY,
            last_scan: None,
            resolving: false,
            pids: Vec::new(),
            in_container_cgroup: false,
        });
        if pid != 0 && !pending.pids.contains(&pid) && pending.pids.len() < PIDS_KEPT {
            pending.pids.push(pid);
        }
        if !pending.resolving && now.duration_since(pending.last_try) >= RETRY_EVERY {
            self.try_resolve(key);
        }
        Decision::Hold
    }

    /// Starts a resolution of a pending namespace with the clues gathered so far.
    fn try_resolve(&mut self, key: MntnsKey) {
        let (Some(collection), Some(runtime)) = (&self.collection, &self.runtime) else {
            return;
        };
        let Some(pending) = self.pending.get_mut(&key) else {
            return;
        };
        let now = Instant::now();
        pending.resolving = true;
        pending.last_try = now;
        let scan = pending
            .last_scan
            .is_none_or(|t| now.duration_since(t) >= SCAN_EVERY);
        if scan {
            pending.last_scan = Some(now);
        }
        let clues = Clues {
            pids: pending.pids.clone(),
            cgroup: self.notes.as_ref().and_then(|n| n.cgroup(key)),
            scan,
        };
        let (collection, tx) = (collection.clone(), self.resolved_tx.clone());
        runtime.spawn(async move {
            let r = resolve(&collection, key, clues).await;
            let _ = tx.send((key, r));
        });
    }

    /// Applies runtime events and resolutions; returns the namespaces whose held events can
    /// now be released, with their decision.
    pub fn poll(&mut self) -> Vec<Released> {
        let mut learned = Vec::new();
        let mut removed = Vec::new();
        if let Some(rx) = &mut self.events {
            loop {
                match rx.try_recv() {
                    Ok(ContainerEvent::Added(c)) => {
                        removed.retain(|r: &Arc<Container>| r.id != c.id);
                        learned.push(c)
                    }
                    Ok(ContainerEvent::Removed(c)) => {
                        learned.retain(|l| l.id != c.id);
                        removed.push(c.clone());
                    }
                    Err(TryRecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
        }
        for gone in removed {
            let key = gone.mntns_key();
            if matches!(self.known.get(&key), Some(Known::Container(k)) if k.id == gone.id) {
                self.forget_now(key);
            }
        }
        for c in learned {
            self.learn(c.mntns_key(), c);
        }
        while let Ok((key, r)) = self.resolved_rx.try_recv() {
            match r {
                Resolution::Container(c) => self.learn(key, c),
                Resolution::Plain => self.not_container(key),
                Resolution::Unknown | Resolution::AwaitingRuntime => {
                    if let Some(p) = self.pending.get_mut(&key) {
                        p.resolving = false;
                        p.in_container_cgroup |= matches!(r, Resolution::AwaitingRuntime);
                    }
                }
            }
        }
        let now = Instant::now();
        let mut released = Vec::new();
        let mut retry = Vec::new();
        let mut done = Vec::new();
        for (&key, p) in &self.pending {
            if self.known.contains(&key) {
                done.push((key, false));
            } else if p.resolving {
            } else if now.duration_since(p.since)
                >= if p.in_container_cgroup {
                    HOLD_MAX_CONTAINER
                } else {
                    HOLD_MAX
                }
            {
                done.push((key, true));
            } else if now.duration_since(p.last_try) >= RETRY_EVERY {
                retry.push(key);
            }
        }
        for key in retry {
            self.try_resolve(key);
        }
        for (key, unclaimed) in done {
            self.pending.remove(&key);
            if unclaimed {
                self.unclaimed += 1;
                self.not_container(key);
            }
            let decision = match self.known.get(&key) {
                Some(k) => self.verdict(k),
                None => Decision::Drop,
            };
            released.push(Released {
                mntns: key,
                decision,
                unclaimed,
            });
        }
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            self.sweep_dead_namespaces();
        }
        let (due, later): (Vec<_>, Vec<_>) = self.forget.drain(..).partition(|(t, _)| *t <= now);
        self.forget = later;
        for (_, key) in due {
            if !self.is_live(key) {
                self.forget_now(key);
            }
        }
        released
    }

    fn forget_now(&mut self, key: MntnsKey) {
        if self.known.remove(&key).is_some() {
            self.map_updates.push((key, None));
        }
    }

    /// Forgets decisions about namespaces no process lives in any more: they only take room
    /// (a namespace that gets the inode later has another id, or, without ids, must not
    /// inherit the verdict).
    fn sweep_dead_namespaces(&mut self) {
        let alive = live_namespaces();
        if alive.is_empty() {
            return;
        }
        let dead: Vec<MntnsKey> = self
            .known
            .keys()
            .filter(|k| {
                Some(*k) != self.host_mntns
                    && !alive.contains(&k.inum)
                    && !self.pending.contains_key(k)
            })
            .collect();
        for key in dead {
            self.forget_now(key);
        }
    }

    /// Whether a mount namespace's records are shown (flight-recorder gadgets): a selected
    /// container, or, with `--host`, anything that is not a container.
    pub fn shows(&self, key: MntnsKey, container: Option<&Container>) -> bool {
        match (container, self.known.get(&key)) {
            (Some(c), _) => self.selected(c),
            (None, Some(Known::Container(c))) => self.selected(c),
            (None, _) => self.host,
        }
    }

    /// Mount namespaces with a decision.
    /// The host's mount namespace, when it could be read.
    pub fn host_mntns(&self) -> Option<MntnsKey> {
        self.host_mntns
    }

    pub fn known_count(&self) -> usize {
        self.known.len()
    }

    /// Mount namespaces whose events are held right now.
    pub fn holding(&self) -> usize {
        self.pending.len()
    }

    /// Mount namespaces released as "not a container" because nothing claimed them in time.
    pub fn unclaimed(&self) -> u64 {
        self.unclaimed
    }
}
