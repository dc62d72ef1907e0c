//! Which mount namespaces' events are shown, and with which container.
//!
//! The BPF filter map drops what is known to be unwanted. A mount namespace BPF has no verdict
//! for (a container that just started, before its runtime announced it) reaches user space, where
//! its events are held back until it is resolved: by the runtime's event, by the process's
//! cgroup, or, after [`HOLD_MAX`], as "not a container". Then its events are released in order
//! and the verdict goes to the map, so later ones are filtered in the kernel.

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::containers::{Container, ContainerCollection, ContainerEvent};

/// How long events of an unknown mount namespace wait for it to be resolved.
pub const HOLD_MAX: Duration = Duration::from_millis(1500);
/// How long a removed container's verdict stays in the map (its last events may still come).
const FORGET_AFTER: Duration = Duration::from_secs(5);

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

/// What a process told about its mount namespace.
enum Resolution {
    Container(Arc<Container>),
    /// Not in a container's cgroup and not a runtime setting one up: a host process in a
    /// namespace of its own (a service with a private /tmp, a sandbox).
    Plain,
    Unknown,
}

/// Runtimes' helpers that run in a container's namespaces before it has its cgroup.
const RUNTIME_COMMS: [&str; 5] = ["runc", "crun", "containerd-shim", "conmon", "runc:["];

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
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

/// The mount namespaces some process lives in.
pub(super) fn live_namespaces() -> Option<std::collections::HashSet<u64>> {
    use std::os::unix::fs::MetadataExt;
    let mut set = std::collections::HashSet::new();
    for e in std::fs::read_dir("/proc").ok()?.filter_map(Result::ok) {
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            if let Ok(m) = std::fs::metadata(e.path().join("ns/mnt")) {
                set.insert(m.ino());
            }
        }
    }
    Some(set)
}

/// A live process in a mount namespace (the one an event came from may have exited already).
fn any_pid_in(mntns: u64) -> Option<u32> {
    let want = format!("mnt:[{mntns}]");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path().join("ns/mnt")).ok()?;
            (link.to_str() == Some(want.as_str())).then_some(pid)
        })
}

async fn resolve(collection: &ContainerCollection, pid: u32, mntns: u64) -> Resolution {
    if let Some(c) = collection.resolve_pid(pid).await {
        return Resolution::Container(c);
    }
    let pid = match crate::containers::procfs::mntns_of(pid) {
        Ok(m) if m == mntns => pid,
        _ => match any_pid_in(mntns) {
            Some(other) => {
                if let Some(c) = collection.resolve_pid(other).await {
                    return Resolution::Container(c);
                }
                other
            }
            None => return Resolution::Unknown,
        },
    };
    let still_there = crate::containers::procfs::mntns_of(pid).ok() == Some(mntns);
    let hints = crate::containers::procfs::cgroup_hints(pid)
        .await
        .unwrap_or_default();
    let runtime_helper = [Some(pid), parent_of(pid)]
        .into_iter()
        .flatten()
        .any(|p| RUNTIME_COMMS.iter().any(|r| comm_of(p).starts_with(r)));
    if still_there && hints.is_empty() && !runtime_helper {
        Resolution::Plain
    } else {
        Resolution::Unknown
    }
}

struct Pending {
    since: Instant,
    resolving: bool,
}

pub struct Selection {
    names: Vec<String>,
    host: bool,
    collection: Option<Arc<ContainerCollection>>,
    events: Option<broadcast::Receiver<ContainerEvent>>,
    runtime: Option<tokio::runtime::Handle>,
    resolved_tx: mpsc::Sender<(u64, Resolution)>,
    resolved_rx: mpsc::Receiver<(u64, Resolution)>,
    known: HashMap<u64, Known>,
    pending: HashMap<u64, Pending>,
    forget: Vec<(Instant, u64)>,
    host_mntns: Option<u64>,
    last_sweep: Instant,
    /// Verdicts for the BPF map: `Some(keep)` to set, `None` to delete.
    pub map_updates: Vec<(u64, Option<bool>)>,
}

impl Selection {
    pub fn new(
        names: Vec<String>,
        host: bool,
        host_mntns: Option<u64>,
        containers: Option<(Arc<ContainerCollection>, tokio::runtime::Handle)>,
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
            resolved_tx,
            resolved_rx,
            known: HashMap::new(),
            pending: HashMap::new(),
            forget: Vec::new(),
            host_mntns,
            last_sweep: Instant::now(),
            map_updates: Vec::new(),
        };
        if let Some(h) = host_mntns {
            s.known.insert(h, Known::NotContainer);
            s.map_updates.push((h, Some(host)));
        }
        for c in s.collection.as_ref().map(|c| c.all()).unwrap_or_default() {
            s.learn(c);
        }
        s
    }

    pub fn selected(&self, c: &Container) -> bool {
        self.names.is_empty() || self.names.contains(&c.name)
    }

    fn is_live(&self, mntns: u64) -> bool {
        self.collection
            .as_ref()
            .is_some_and(|col| col.all().iter().any(|c| c.mntns_id == mntns))
    }

    fn learn(&mut self, c: Arc<Container>) {
        if !self.is_live(c.mntns_id) {
            // A container that is already gone (its last events are late): forget it soon, so
            // churn never grows the map.
            self.forget
                .push((Instant::now() + FORGET_AFTER, c.mntns_id));
        }
        self.map_updates.push((c.mntns_id, Some(self.selected(&c))));
        self.known.insert(c.mntns_id, Known::Container(c));
    }

    fn verdict(&self, known: &Known) -> Decision {
        match known {
            Known::Container(c) if self.selected(c) => Decision::Keep(Some(c.clone())),
            Known::Container(_) => Decision::Drop,
            Known::NotContainer if self.host => Decision::Keep(None),
            Known::NotContainer => Decision::Drop,
        }
    }

    /// The decision for one event.
    pub fn decide(&mut self, mntns: u64, pid: u32) -> Decision {
        if let Some(k) = self.known.get(&mntns) {
            return self.verdict(k);
        }
        if let Some(c) = self
            .collection
            .as_ref()
            .and_then(|c| c.lookup_live_mntns(mntns))
        {
            self.learn(c);
            return self.verdict(&self.known[&mntns]);
        }
        let (Some(collection), Some(runtime)) = (&self.collection, &self.runtime) else {
            self.known.insert(mntns, Known::NotContainer);
            self.map_updates.push((mntns, Some(self.host)));
            return self.verdict(&Known::NotContainer);
        };
        let pending = self.pending.entry(mntns).or_insert(Pending {
            since: Instant::now(),
            resolving: false,
        });
        if !pending.resolving && pid != 0 {
            pending.resolving = true;
            let (collection, tx) = (collection.clone(), self.resolved_tx.clone());
            runtime.spawn(async move {
                let r = resolve(&collection, pid, mntns).await;
                let _ = tx.send((mntns, r));
            });
        }
        Decision::Hold
    }

    /// Applies runtime events and resolutions; returns the mount namespaces whose held events
    /// can now be released, with their decision.
    pub fn poll(&mut self) -> Vec<(u64, Decision)> {
        let mut learned = Vec::new();
        let mut removed = Vec::new();
        if let Some(rx) = &mut self.events {
            loop {
                match rx.try_recv() {
                    Ok(ContainerEvent::Added(c)) => {
                        removed.retain(|r: &Arc<Container>| r.mntns_id != c.mntns_id);
                        learned.push(c)
                    }
                    // Its namespace is dead or dying; its inode may soon name another one.
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
            // Only if the namespace still means that container (its inode may name a newer one).
            if matches!(self.known.get(&gone.mntns_id), Some(Known::Container(k)) if k.id == gone.id)
            {
                self.forget_now(gone.mntns_id);
            }
        }
        while let Ok((mntns, r)) = self.resolved_rx.try_recv() {
            match r {
                Resolution::Container(c) => learned.push(c),
                Resolution::Plain => {
                    self.known.insert(mntns, Known::NotContainer);
                    self.map_updates.push((mntns, Some(self.host)));
                }
                Resolution::Unknown => {
                    if let Some(p) = self.pending.get_mut(&mntns) {
                        p.resolving = false;
                    }
                }
            }
        }
        for c in learned {
            self.learn(c);
        }
        let now = Instant::now();
        let mut released = Vec::new();
        let mut done = Vec::new();
        for (&mntns, p) in &self.pending {
            let timed_out = now.duration_since(p.since) >= HOLD_MAX && !p.resolving;
            if self.known.contains_key(&mntns) || timed_out {
                done.push(mntns);
            }
        }
        for mntns in done {
            self.pending.remove(&mntns);
            if !self.known.contains_key(&mntns) {
                // A late lookup, then give up: not a container. A removed container may only
                // name a namespace no process lives in any more (its last events).
                let late = match any_pid_in(mntns) {
                    Some(_) => self
                        .collection
                        .as_ref()
                        .and_then(|c| c.lookup_live_mntns(mntns)),
                    None => self.collection.as_ref().and_then(|c| c.lookup_mntns(mntns)),
                };
                match late {
                    Some(c) => self.learn(c),
                    None => {
                        self.known.insert(mntns, Known::NotContainer);
                        self.map_updates.push((mntns, Some(self.host)));
                    }
                }
            }
            released.push((mntns, self.verdict(&self.known[&mntns])));
        }
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            self.sweep_dead_namespaces();
        }
        let (due, later): (Vec<_>, Vec<_>) = self.forget.drain(..).partition(|(t, _)| *t <= now);
        self.forget = later;
        for (_, mntns) in due {
            if !self.is_live(mntns) {
                self.known.remove(&mntns);
                self.map_updates.push((mntns, None));
            }
        }
        released
    }

    fn forget_now(&mut self, mntns: u64) {
        if self.known.remove(&mntns).is_some() {
            self.map_updates.push((mntns, None));
        }
    }

    /// Forgets decisions about namespaces no process lives in any more: their inodes get
    /// reused by new namespaces (a new container must not inherit an old verdict).
    fn sweep_dead_namespaces(&mut self) {
        let Some(alive) = live_namespaces() else {
            return;
        };
        let dead: Vec<u64> = self
            .known
            .keys()
            .copied()
            .filter(|m| {
                Some(*m) != self.host_mntns && !alive.contains(m) && !self.pending.contains_key(m)
            })
            .collect();
        for mntns in dead {
            self.forget_now(mntns);
        }
    }

    /// Whether a mount namespace's records are shown (flight-recorder gadgets): a selected
    /// container, or, with `--host`, anything that is not a container.
    pub fn shows(&self, mntns: u64, container: Option<&Container>) -> bool {
        match (container, self.known.get(&mntns)) {
            (Some(c), _) => self.selected(c),
            (None, Some(Known::Container(c))) => self.selected(c),
            (None, _) => self.host,
        }
    }

    /// Mount namespaces with a decision.
    pub fn known_count(&self) -> usize {
        self.known.len()
    }

    /// Mount namespaces whose events are held right now.
    pub fn holding(&self) -> usize {
        self.pending.len()
    }
}
