//! `ContainerCollection`: the live set of containers of every connected
//! runtime, indexed by mount namespace, kept current by background watchers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::container::Container;
use super::error::ContainerError;
use super::mntns::MntnsKey;
use super::procfs::{self, CgroupHint};
use super::runtime::{connect_all, RuntimeClient, RuntimeConfig};
use super::watch;

/// How many removed containers `lookup_mntns` still knows.
pub const GONE_CAPACITY: usize = 256;

/// How long the first listing of one runtime may take before the collection starts without it
/// (an explicitly requested runtime: fails); the watcher lists again in the background.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// Capacity of the `subscribe` channel; a slower receiver gets `Lagged`.
const EVENT_CAPACITY: usize = 1024;

/// A change in the live set.
#[derive(Debug, Clone)]
pub enum ContainerEvent {
    Added(Arc<Container>),
    Removed(Arc<Container>),
}

/// Identity of a container inside the collection: which client reported it
/// (two sockets of one runtime may both be used), its containerd namespace
/// and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    source: usize,
    namespace: Option<String>,
    id: String,
}

impl Key {
    pub(super) fn new(source: usize, namespace: Option<&str>, id: &str) -> Self {
        Key {
            source,
            namespace: namespace.map(str::to_string),
            id: id.to_string(),
        }
    }

    fn of(source: usize, c: &Container) -> Self {
        Key::new(source, c.containerd_namespace.as_deref(), &c.id)
    }
}

/// A removed container and when it was removed (or, gone before it was seen, remembered).
struct Gone {
    at: Instant,
    container: Arc<Container>,
}

#[derive(Default)]
struct State {
    live: HashMap<Key, Arc<Container>>,
    /// Live containers by mount namespace inode (live namespaces never share one).
    by_mntns: HashMap<u64, Arc<Container>>,
    /// Recently removed, oldest first; bounded by `GONE_CAPACITY`.
    gone: VecDeque<Gone>,
}

impl State {
    fn live_mntns(&self, key: &MntnsKey) -> Option<&Arc<Container>> {
        self.by_mntns
            .get(&key.inum)
            .filter(|c| c.mntns_key().matches(key))
    }

    fn push_gone(&mut self, container: Arc<Container>) {
        self.gone.push_back(Gone {
            at: Instant::now(),
            container,
        });
        while self.gone.len() > GONE_CAPACITY {
            self.gone.pop_front();
        }
    }

    /// Live containers, then removed ones newest first.
    fn newest_first(&self) -> impl Iterator<Item = &Arc<Container>> {
        self.live
            .values()
            .chain(self.gone.iter().rev().map(|g| &g.container))
    }
}

pub struct ContainerCollection {
    state: RwLock<State>,
    events: broadcast::Sender<ContainerEvent>,
    clients: Vec<Arc<dyn RuntimeClient>>,
    watchers: Mutex<Vec<JoinHandle<()>>>,
}

impl ContainerCollection {
    /// Connects the configured runtimes, lists their running containers and
    /// starts watching them. Returns the one-line notices of runtimes that
    /// were skipped; a runtime marked `explicit` that cannot be used is an
    /// error instead.
    pub async fn start(
        configs: Vec<RuntimeConfig>,
    ) -> Result<(Arc<Self>, Vec<String>), ContainerError> {
        let (clients, mut warnings) = connect_all(&configs).await?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let collection = Arc::new(ContainerCollection {
            state: RwLock::new(State::default()),
            events,
            clients: clients.clone(),
            watchers: Mutex::new(Vec::new()),
        });
        for (source, client) in clients.into_iter().enumerate() {
            // Subscribe before listing so nothing starting in between is missed.
            let events = watch::forward(client.events());
            let listing = tokio::time::timeout(LIST_TIMEOUT, client.list())
                .await
                .unwrap_or_else(|_| {
                    Err(ContainerError::RequestTimeout {
                        runtime: client.kind(),
                        socket: client.socket_path().to_path_buf(),
                        op: "listing the running containers",
                        secs: LIST_TIMEOUT.as_secs(),
                    })
                });
            match listing {
                Ok(list) => collection.reconcile(source, list),
                Err(e) if is_explicit(&configs, client.as_ref()) => return Err(e),
                Err(e) => warnings.push(format!(
                    "{}: listing failed, will retry: {e}",
                    client.kind()
                )),
            }
            let task = tokio::spawn(watch::run(
                Arc::downgrade(&collection),
                source,
                client,
                events,
            ));
            lock(&collection.watchers).push(task);
        }
        Ok((collection, warnings))
    }

    /// The container owning a mount namespace: a live one, else one removed
    /// recently (so events of a container that exited during a run still
    /// name it). A removed one only for the very key (inode and id; both ids 0 on a
    /// kernel without them, where a newer namespace may have inherited the inode).
    pub fn lookup_mntns(&self, key: MntnsKey) -> Option<Arc<Container>> {
        let state = self.read();
        state
            .live_mntns(&key)
            .or_else(|| {
                state
                    .gone
                    .iter()
                    .rev()
                    .map(|g| &g.container)
                    .find(|c| c.mntns_id != 0 && c.mntns_key() == key)
            })
            .cloned()
    }

    /// A container by runtime id: live, else recently gone (also one that exited before it
    /// could be watched).
    pub fn lookup_id(&self, id: &str) -> Option<Arc<Container>> {
        self.read().newest_first().find(|c| c.id == id).cloned()
    }

    /// The container a cgroup names (live or recently gone). Ids may be reused (`ctr run --rm
    /// web` twice): the instance whose init pid is among `pids` (pids seen in the namespace)
    /// wins, else the newest.
    pub fn claim_cgroup(&self, hint: &CgroupHint, pids: &[u32]) -> Option<Arc<Container>> {
        let state = self.read();
        let same = |c: &&Arc<Container>| {
            c.id == hint.id
                && hint.runtime.is_none_or(|r| r == c.runtime)
                && match (&hint.namespace, &c.containerd_namespace) {
                    (Some(h), Some(n)) => h == n,
                    _ => true,
                }
        };
        let candidates: Vec<&Arc<Container>> = state.newest_first().filter(same).collect();
        candidates
            .iter()
            .find(|c| c.pid != 0 && pids.contains(&c.pid))
            .or_else(|| candidates.first())
            .map(|c| (*c).clone())
    }

    /// A container that was gone before its namespace could be seen (no mount namespace known)
    /// whose init pid is among `pids`, remembered at most `within` ago (pids are reused).
    pub fn claim_init_pid(&self, pids: &[u32], within: Duration) -> Option<Arc<Container>> {
        let state = self.read();
        state
            .gone
            .iter()
            .rev()
            .take_while(|g| g.at.elapsed() <= within)
            .map(|g| &g.container)
            .find(|c| c.mntns_id == 0 && c.pid != 0 && pids.contains(&c.pid))
            .cloned()
    }

    /// The container with this id, asking the runtimes when the collection does not know it
    /// (it may have exited before it was seen; then it has no pid nor mount namespace).
    pub async fn describe(&self, id: &str, namespace: Option<&str>) -> Option<Arc<Container>> {
        if let Some(c) = self.lookup_id(id) {
            return Some(c);
        }
        for client in &self.clients {
            if let Ok(Some(c)) = client.describe(id, namespace).await {
                return Some(self.remember_exited(c));
            }
        }
        None
    }

    /// Keeps a container that is already gone in the "recently gone" list, so its name is
    /// known to whoever recorded its activity.
    pub(super) fn remember_exited(&self, c: Container) -> Arc<Container> {
        let c = Arc::new(c);
        self.write().push_gone(c.clone());
        c
    }

    /// The live container owning a mount namespace.
    pub fn lookup_live_mntns(&self, key: MntnsKey) -> Option<Arc<Container>> {
        self.read().live_mntns(&key).cloned()
    }

    /// Live containers with this name.
    pub fn by_name(&self, name: &str) -> Vec<Arc<Container>> {
        let mut v: Vec<_> = self
            .read()
            .live
            .values()
            .filter(|c| c.name == name)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Every live container, by name.
    pub fn all(&self) -> Vec<Arc<Container>> {
        let mut v: Vec<_> = self.read().live.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        v
    }

    /// Added/Removed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }

    /// The runtimes in use.
    pub fn runtimes(&self) -> Vec<super::container::RuntimeKind> {
        self.clients.iter().map(|c| c.kind()).collect()
    }

    /// The container a process runs in, also when its runtime has not
    /// announced it yet: finds the container id in `/proc/<pid>/cgroup`,
    /// asks the runtimes, and adds what it finds (emitting `Added`).
    /// `None` for host processes and containers of runtimes not in use.
    /// Costs a file read and, for an unknown container, a few runtime
    /// calls: callers should remember negative answers per mount namespace.
    pub async fn resolve_pid(&self, pid: u32) -> Option<Arc<Container>> {
        let mntns = procfs::mntns_key_of(pid).ok()?;
        if let Some(c) = self.read().live_mntns(&mntns) {
            return Some(c.clone());
        }
        let hints = procfs::cgroup_hints(pid).await.ok()?;
        for hint in hints {
            // The runtime the path names first, then the others (a Docker
            // id may also be a containerd container id).
            let mut order: Vec<usize> = (0..self.clients.len()).collect();
            order.sort_by_key(|&i| Some(self.clients[i].kind()) != hint.runtime);
            for source in order {
                let client = &self.clients[source];
                if let Ok(Some(c)) = client
                    .inspect(&hint.id, hint.namespace.as_deref(), Some(pid))
                    .await
                {
                    // While runc sets a container up, its first process is
                    // in the cgroup but not yet in the new mount namespace:
                    // never let such a pid name the host's namespace.
                    if Some(c.mntns_id) == procfs::mntns_of(1).ok() {
                        return None;
                    }
                    return Some(self.insert(source, c));
                }
            }
        }
        None
    }

    /// Adds or refreshes a container; returns the record now in the set.
    pub(super) fn insert(&self, source: usize, c: Container) -> Arc<Container> {
        let key = Key::of(source, &c);
        let mut state = self.write();
        if let Some(old) = state.live.get(&key).cloned() {
            if old.mntns_key().matches(&c.mntns_key()) {
                if *old == c {
                    return old;
                }
                // Same container, better data (e.g. the real init pid after
                // `resolve_pid` used a hint): refresh without an event.
                let new = Arc::new(c);
                state.live.insert(key, new.clone());
                state.by_mntns.insert(new.mntns_id, new.clone());
                return new;
            }
            // Restarted: a new init process in a new mount namespace.
            self.remove_locked(&mut state, &key);
        }
        if let Some(other) = state.by_mntns.get(&c.mntns_id) {
            // The same namespace reported by another runtime: first wins.
            return other.clone();
        }
        let new = Arc::new(c);
        state.live.insert(key, new.clone());
        state.by_mntns.insert(new.mntns_id, new.clone());
        // No receiver is not an error.
        let _ = self.events.send(ContainerEvent::Added(new.clone()));
        new
    }

    pub(super) fn remove(&self, key: &Key) {
        let mut state = self.write();
        self.remove_locked(&mut state, key);
    }

    fn remove_locked(&self, state: &mut State, key: &Key) {
        let Some(old) = state.live.remove(key) else {
            return;
        };
        if state
            .by_mntns
            .get(&old.mntns_id)
            .is_some_and(|c| Arc::ptr_eq(c, &old))
        {
            state.by_mntns.remove(&old.mntns_id);
        }
        state.push_gone(old.clone());
        let _ = self.events.send(ContainerEvent::Removed(old));
    }

    /// Makes the set of containers from `source` equal to `list`.
    pub(super) fn reconcile(&self, source: usize, list: Vec<Container>) {
        let keys: Vec<Key> = list.iter().map(|c| Key::of(source, c)).collect();
        for c in list {
            self.insert(source, c);
        }
        let vanished: Vec<Key> = self
            .read()
            .live
            .keys()
            .filter(|k| k.source == source && !keys.contains(k))
            .cloned()
            .collect();
        for key in vanished {
            self.remove(&key);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // The state stays consistent even if a holder panicked.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ContainerCollection {
    fn drop(&mut self) {
        for task in lock(&self.watchers).drain(..) {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_explicit(configs: &[RuntimeConfig], client: &dyn RuntimeClient) -> bool {
    configs
        .iter()
        .any(|c| c.explicit && c.kind == client.kind() && c.socket_path == client.socket_path())
}

#[cfg(test)]
mod tests {
    use super::super::container::{K8sMeta, RuntimeKind};
    use super::*;

    fn empty() -> ContainerCollection {
        ContainerCollection {
            state: RwLock::new(State::default()),
            events: broadcast::channel(EVENT_CAPACITY).0,
            clients: Vec::new(),
            watchers: Mutex::new(Vec::new()),
        }
    }

    fn container(id: usize, mntns: u64) -> Container {
        Container {
            id: format!("c{id}"),
            name: format!("n{id}"),
            runtime: RuntimeKind::Docker,
            image_name: String::new(),
            image_digest: None,
            pid: 1000 + id as u32,
            mntns_id: mntns,
            mntns_nsid: mntns + 100_000,
            labels: Default::default(),
            started_at: None,
            k8s: K8sMeta::default(),
            containerd_namespace: None,
        }
    }

    #[test]
    fn churn_keeps_gone_list_bounded() {
        let coll = empty();
        for i in 0..1000 {
            coll.insert(0, container(i, 5000 + i as u64));
            coll.remove(&Key::new(0, None, &format!("c{i}")));
        }
        let state = coll.read();
        assert!(state.live.is_empty() && state.by_mntns.is_empty());
        assert_eq!(state.gone.len(), GONE_CAPACITY);
        drop(state);
        assert_eq!(
            coll.lookup_mntns(MntnsKey::new(5999, 105_999))
                .map(|c| c.id.clone()),
            Some("c999".into())
        );
        assert!(coll.lookup_mntns(MntnsKey::new(5999, 0)).is_none());
        assert!(coll.lookup_mntns(MntnsKey::new(5000, 105_000)).is_none());
    }

    #[test]
    fn insert_is_idempotent_and_restart_replaces() {
        let coll = empty();
        let mut rx = coll.subscribe();
        coll.insert(0, container(1, 7));
        coll.insert(0, container(1, 7));
        // Better data for the same namespace: refreshed, no event.
        let mut refreshed = container(1, 7);
        refreshed.pid = 4242;
        coll.insert(0, refreshed);
        assert_eq!(
            coll.lookup_mntns(MntnsKey::new(7, 0)).map(|c| c.pid),
            Some(4242)
        );
        // Restarted: new namespace, Removed then Added.
        coll.insert(0, container(1, 8));
        let kinds: Vec<bool> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| matches!(e, ContainerEvent::Added(_)))
            .collect();
        assert_eq!(kinds, vec![true, false, true]);
        assert_eq!(coll.all().len(), 1);
        assert_eq!(
            coll.lookup_mntns(MntnsKey::new(8, 0)).map(|c| c.id.clone()),
            Some("c1".into())
        );
        // The old namespace still names it (recently gone).
        assert!(coll.lookup_mntns(MntnsKey::new(7, 100_007)).is_some());
    }

    #[test]
    fn a_reused_inode_is_never_named_after_the_dead_namespace() {
        let coll = empty();
        let mut a = container(1, 40);
        a.mntns_nsid = 6;
        coll.insert(0, a);
        coll.remove(&Key::new(0, None, "c1"));
        // The inode went to a new namespace (id 4102) of another, still unknown, container.
        assert!(coll.lookup_mntns(MntnsKey::new(40, 4102)).is_none());
        assert_eq!(
            coll.lookup_mntns(MntnsKey::new(40, 6))
                .map(|c| c.id.clone()),
            Some("c1".into())
        );
        let mut b = container(2, 40);
        b.mntns_nsid = 4102;
        coll.insert(0, b);
        assert_eq!(
            coll.lookup_live_mntns(MntnsKey::new(40, 4102))
                .map(|c| c.id.clone()),
            Some("c2".into())
        );
        assert!(coll.lookup_live_mntns(MntnsKey::new(40, 6)).is_none());
        assert_eq!(
            coll.lookup_mntns(MntnsKey::new(40, 6))
                .map(|c| c.id.clone()),
            Some("c1".into())
        );
    }

    #[test]
    fn claims_by_cgroup_prefer_the_instance_with_the_pid() {
        let coll = empty();
        let hint = CgroupHint {
            runtime: Some(RuntimeKind::Containerd),
            namespace: Some("default".into()),
            id: "web".into(),
        };
        for pid in [300, 400] {
            let mut c = Container::exited(RuntimeKind::Containerd, "web", "web", None, Some(pid));
            c.containerd_namespace = Some("default".into());
            coll.remember_exited(c);
        }
        let mut other_ns =
            Container::exited(RuntimeKind::Containerd, "web", "web", None, Some(500));
        other_ns.containerd_namespace = Some("team1".into());
        coll.remember_exited(other_ns);
        assert_eq!(coll.claim_cgroup(&hint, &[300]).map(|c| c.pid), Some(300));
        assert_eq!(coll.claim_cgroup(&hint, &[7]).map(|c| c.pid), Some(400));
        assert_eq!(coll.claim_cgroup(&hint, &[500]).map(|c| c.pid), Some(400));
        let docker = CgroupHint {
            runtime: Some(RuntimeKind::Docker),
            ..hint
        };
        assert!(coll.claim_cgroup(&docker, &[300]).is_none());
        assert_eq!(
            coll.claim_init_pid(&[500, 1], Duration::from_secs(5))
                .and_then(|c| c.containerd_namespace.clone()),
            Some("team1".into())
        );
        assert!(coll.claim_init_pid(&[1], Duration::from_secs(5)).is_none());
    }

    #[test]
    fn same_namespace_from_two_runtimes_is_listed_once() {
        let coll = empty();
        coll.insert(0, container(1, 9));
        let mut dup = container(1, 9);
        dup.runtime = RuntimeKind::Containerd;
        dup.containerd_namespace = Some("moby".into());
        let kept = coll.insert(1, dup);
        assert_eq!(kept.runtime, RuntimeKind::Docker);
        assert_eq!(coll.all().len(), 1);
    }

    #[test]
    fn reconcile_removes_vanished() {
        let coll = empty();
        coll.reconcile(0, vec![container(1, 11), container(2, 12)]);
        coll.reconcile(1, vec![container(3, 13)]);
        coll.reconcile(0, vec![container(2, 12), container(4, 14)]);
        let ids: Vec<String> = coll.all().iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, vec!["c2", "c3", "c4"]);
    }
}
