//! Process lineage: exec ids and a bounded cache of process images, like Tetragon's.
//!
//! An image is named by `(key, pid)`: `pid` is the thread group id in the initial pid namespace
//! and `key` ns since boot (see `bpf/gadget/process.h`): for an exec seen by BPF, the process's
//! start plus its exec count (`task->self_exec_id`: the same in every run that sees the exec);
//! for a process that has not exec'd while watched, its start rounded down to the clock tick
//! (what `/proc/PID/stat` field 22 gives, so the `/proc` scan and BPF name such a process alike). Its `exec_id` is the standard base64 of
//! `"<node>:<key>:<pid>"`, node the host name (`/proc/sys/kernel/hostname`): unique across the
//! machine's boots (a pid reused within 10 ms of a clock tick aside) and across machines.
//!
//! The cache is seeded by a `/proc` scan at start, filled by exec events, told of exits (with
//! `--exits`), and completed from `/proc` for a parent it does not hold (a clone that never
//! exec'd: its start tick is checked, so a reused pid never stands for it). It is bounded: an
//! LRU of [`CACHE_CAPACITY`] images; an exited image whose children are all gone (Tetragon's
//! reference count) leaves it [`EXITED_GRACE`] after its exit.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use base64::Engine;
use lru::LruCache;

use super::enrich::boot_offset_ns;
use crate::event::{Event, FieldDef, ListFiller, Schema, Value};

/// Images the cache holds at most; the least recently used goes first (counted as evicted).
pub const CACHE_CAPACITY: usize = 8192;
/// How long an exited image stays for the events still in flight that name it.
pub const EXITED_GRACE: Duration = Duration::from_secs(2);
/// /proc's clock tick in ns (USER_HZ = 100 on every architecture Linux exposes it on).
pub const CLOCK_TICK_NS: u64 = 10_000_000;

/// `(key, pid)`: see the module documentation.
pub type ImageKey = (u64, u32);

/// One process image.
#[derive(Debug, Clone, Default)]
pub struct Image {
    pub exec_id: String,
    pub pid: u32,
    pub key: u64,
    pub comm: String,
    pub exepath: String,
    pub args: Vec<String>,
    pub parent: Option<ImageKey>,
    /// Images in the cache whose parent this is.
    pub children: u32,
    pub exited: bool,
    /// A clone that has not exec'd: it runs its parent's image (binary and args inherited).
    pub fork: bool,
}

/// What a run asked of the lineage operator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LineageOptions {
    /// `--parent`: the parent's fields as `parent.*`.
    pub parent: bool,
    /// `--ancestors N`: up to N ancestors (the parent first) as `ancestors.*` lists.
    pub ancestors: u32,
}

/// The `exec_id` of an image on `node`.
pub fn exec_id(node: &str, key: u64, pid: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{node}:{key}:{pid}"))
}

/// The node name exec ids are built from: the host name, `localhost` if unreadable.
pub fn node_name() -> String {
    let path = format!(
        "{}/sys/kernel/hostname",
        crate::containers::procfs::proc_root()
    );
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// What `/proc/PID/stat` says of a process: comm, ppid, start in clock ticks since boot.
fn proc_stat(pid: u32) -> Option<(String, u32, u64)> {
    let root = crate::containers::procfs::proc_root();
    let text = std::fs::read_to_string(format!("{root}/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: it ends at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, starttime field 22.
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((comm, ppid, start))
}

fn proc_details(pid: u32) -> (String, Vec<String>) {
    let root = crate::containers::procfs::proc_root();
    let exe = std::fs::read_link(format!("{root}/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args = std::fs::read(format!("{root}/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    (exe, args)
}

/// The key of the running process `pid` as `/proc` shows it (its start tick).
fn proc_key(pid: u32) -> Option<(u64, String, u32)> {
    let (comm, ppid, ticks) = proc_stat(pid)?;
    Some((ticks.checked_mul(CLOCK_TICK_NS)?, comm, ppid))
}

pub struct ProcessCache {
    node: String,
    images: LruCache<ImageKey, Image>,
    /// The latest image of each pid in the cache.
    by_pid: HashMap<u32, ImageKey>,
    exited: VecDeque<(Instant, ImageKey)>,
    pub evictions: u64,
    pub from_proc: u64,
}

impl ProcessCache {
    pub fn new(node: String, capacity: usize) -> Self {
        ProcessCache {
            node,
            images: LruCache::new(NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN)),
            by_pid: HashMap::new(),
            exited: VecDeque::new(),
            evictions: 0,
            from_proc: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.images.cap().get()
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Seeds the cache with every process running now (`/proc` scan).
    pub fn scan_proc(&mut self) {
        let root = crate::containers::procfs::proc_root();
        let Ok(dir) = std::fs::read_dir(root) else {
            return;
        };
        let mut found = Vec::new();
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((key, comm, ppid)) = proc_key(pid) {
                found.push((pid, key, comm, ppid));
            }
        }
        let keys: HashMap<u32, u64> = found.iter().map(|(p, k, _, _)| (*p, *k)).collect();
        for (pid, key, comm, ppid) in found {
            let (exepath, args) = proc_details(pid);
            let parent = keys.get(&ppid).map(|k| (*k, ppid));
            self.insert(Image {
                exec_id: exec_id(&self.node, key, pid),
                pid,
                key,
                comm,
                exepath,
                args,
                parent,
                ..Default::default()
            });
        }
    }

    /// Adds (or replaces) an image; the parent, when cached, counts it as a child.
    pub fn insert(&mut self, image: Image) {
        let key = (image.key, image.pid);
        if let Some(parent) = image.parent {
            if let Some(p) = self.images.peek_mut(&parent) {
                p.children += 1;
            }
        }
        self.by_pid.insert(image.pid, key);
        if let Some((old_key, old)) = self.images.push(key, image) {
            if old_key != key {
                self.evictions += 1;
                self.forget(old_key, &old);
            }
        }
        self.sweep(Instant::now());
    }

    fn forget(&mut self, key: ImageKey, image: &Image) {
        if self.by_pid.get(&key.1) == Some(&key) {
            self.by_pid.remove(&key.1);
        }
        if let Some(parent) = image.parent {
            if let Some(p) = self.images.peek_mut(&parent) {
                p.children = p.children.saturating_sub(1);
            }
        }
    }

    /// An image, marked recently used.
    pub fn get(&mut self, key: ImageKey) -> Option<&Image> {
        self.images.get(&key)
    }

    /// The `exec_id` of `key`: the cached image's string (computed once per image), else
    /// computed now.
    pub fn exec_id_into(&self, key: ImageKey, out: &mut Value) {
        match self.images.peek(&key) {
            Some(image) => out.assign_str(&image.exec_id),
            None => out.assign_str(&exec_id(&self.node, key.0, key.1)),
        }
    }

    /// The binary and args an image runs: its own, or for a clone recorded before the image
    /// it inherits from reached the cache (the fork ring is read before the exec ring), its
    /// parent's, followed over at most 8 clones.
    pub fn binary(&self, key: ImageKey) -> Option<(&str, &[String])> {
        let mut image = self.images.peek(&key)?;
        for _ in 0..8 {
            if !(image.fork && image.exepath.is_empty()) {
                break;
            }
            match image.parent.and_then(|p| self.images.peek(&p)) {
                Some(p) => image = p,
                None => break,
            }
        }
        Some((&image.exepath, &image.args))
    }

    /// An exec replaced the clone `pid` ran before (a fork image other than `parent`): that
    /// image is over; it leaves like an exited one once its children are gone.
    pub fn replaced(&mut self, pid: u32, parent: ImageKey) {
        if let Some(&old) = self.by_pid.get(&pid) {
            if old != parent && self.images.peek(&old).is_some_and(|i| i.fork) {
                self.exited(old);
            }
        }
    }

    /// The image, or the process from `/proc` when it still runs and started no later than
    /// the image (a clone that never exec'd, an exec outside the selection, one the cache
    /// lost): `/proc` shows its current image.
    pub fn get_or_proc(&mut self, key: ImageKey) -> Option<&Image> {
        if !self.images.contains(&key) {
            let (start, comm, ppid) = proc_key(key.1)?;
            // The same process: its start tick is the key (it did not exec while watched), or
            // it started before the exec that named the image (an exec BPF did not send: a
            // namespace outside the selection); a pid reused since started after both.
            if start > key.0 {
                return None;
            }
            let (exepath, args) = proc_details(key.1);
            let parent = self
                .by_pid
                .get(&ppid)
                .copied()
                .or_else(|| proc_key(ppid).map(|(k, _, _)| (k, ppid)));
            self.from_proc += 1;
            self.insert(Image {
                exec_id: exec_id(&self.node, key.0, key.1),
                pid: key.1,
                key: key.0,
                comm,
                exepath,
                args,
                parent,
                ..Default::default()
            });
        }
        self.images.get(&key)
    }

    /// A process exited: its image leaves after [`EXITED_GRACE`] once no child is cached.
    pub fn exited(&mut self, key: ImageKey) {
        if let Some(image) = self.images.peek_mut(&key) {
            image.exited = true;
            self.exited.push_back((Instant::now(), key));
        }
        self.sweep(Instant::now());
    }

    /// Drops exited images past their grace whose children are gone; one with children is
    /// looked at again a grace later (LRU eviction bounds it anyway).
    fn sweep(&mut self, now: Instant) {
        let mut again = Vec::new();
        while let Some(&(at, key)) = self.exited.front() {
            if now.duration_since(at) < EXITED_GRACE {
                break;
            }
            self.exited.pop_front();
            let keep = self.images.peek(&key).map(|i| i.children > 0);
            match keep {
                Some(true) => again.push((now, key)),
                Some(false) => {
                    if let Some(image) = self.images.pop(&key) {
                        self.forget(key, &image);
                    }
                }
                None => {}
            }
        }
        self.exited.extend(again);
    }
}

/// The lineage operator of one data source: reads `exec_key`/`pid` (and `parent_exec_key`/
/// `parent_pid`, `comm`, `exepath`, `args`), updates the cache, fills `exec_id`,
/// `parent_exec_id`, `start_time` and the `parent.*`/`ancestors.*` fields asked for.
pub struct Lineage {
    key: usize,
    pid: usize,
    parent_key: Option<(usize, usize)>,
    comm: Option<usize>,
    exepath: Option<usize>,
    args: Option<usize>,
    /// Whether this data source's events are exits (they mark images exited).
    exits: bool,
    /// Whether its records are forks: no binary nor args of their own (they inherit the
    /// parent's image).
    forks: bool,
    exec_id: usize,
    parent_exec_id: Option<usize>,
    start_time: usize,
    /// The node exec ids are built from, for a run without a process cache.
    node: String,
    /// `NODE:KEY:PID` of an exec id being built (reused).
    id_text: Vec<u8>,
    clock: super::enrich::WallClock,
    parent_fields: Option<[usize; 6]>,
    ancestors: Option<(u32, [usize; 3])>,
    /// The highest field index this operator writes.
    last: usize,
    boot_offset_ns: i128,
}

fn push(schema: &mut Schema, name: &str, width: usize, hidden: bool, description: &str) -> usize {
    let mut def = FieldDef::new(name);
    def.width = width;
    def.hidden = hidden;
    def.description = description.to_string();
    schema.push(def)
}

impl Lineage {
    /// Adds the lineage fields to a schema holding `exec_key` and `pid`; None otherwise.
    pub fn add(schema: &mut Schema, options: LineageOptions) -> Option<Self> {
        let key = schema.index("exec_key")?;
        let pid = schema.index("pid")?;
        schema.fields[key].hidden = true;
        let parent_key = schema
            .index("parent_exec_key")
            .zip(schema.index("parent_pid"));
        if let Some((k, p)) = parent_key {
            schema.fields[k].hidden = true;
            schema.fields[p].hidden = true;
        }
        // A data source with `exit_code` reports exits: its images leave the cache.
        let exits = schema.index("exit_code").is_some();
        // A record that carries no binary is a clone's: it runs its parent's image.
        let forks = !exits
            && parent_key.is_some()
            && schema.index("args").is_none()
            && schema.index("exepath").is_none();
        let exec_id = push(
            schema,
            "exec_id",
            24,
            true,
            "Process image id: base64 of NODE:START_NS:PID, as Tetragon's",
        );
        let parent_exec_id = parent_key.map(|_| {
            push(
                schema,
                "parent_exec_id",
                24,
                true,
                "exec_id of the parent image (the previous image after a second exec)",
            )
        });
        let start_time = push(
            schema,
            "start_time",
            30,
            true,
            "The process's start, from exec_key (in 10 ms ticks if it has not exec'd since ig started)",
        );
        let parent_fields = (options.parent && parent_key.is_some()).then(|| {
            [
                push(schema, "parent.exec_id", 24, true, "The parent's exec_id"),
                push(schema, "parent.pid", 7, true, "The parent's process ID"),
                push(schema, "parent.comm", 16, true, "The parent's command name"),
                push(
                    schema,
                    "parent.exepath",
                    32,
                    true,
                    "The parent's executable",
                ),
                push(schema, "parent.args", 40, true, "The parent's arguments"),
                push(
                    schema,
                    "parent.start_time",
                    30,
                    true,
                    "When the parent's image began",
                ),
            ]
        });
        let ancestors = (options.ancestors > 0 && parent_key.is_some()).then(|| {
            (
                options.ancestors,
                [
                    push(
                        schema,
                        "ancestors.exec_id",
                        40,
                        true,
                        "exec_id of the ancestors, the parent first",
                    ),
                    push(
                        schema,
                        "ancestors.pid",
                        24,
                        true,
                        "Process IDs of the ancestors, the parent first",
                    ),
                    push(
                        schema,
                        "ancestors.exepath",
                        40,
                        true,
                        "Executables of the ancestors, the parent first",
                    ),
                ],
            )
        });
        let last = schema.fields.len() - 1;
        Some(Lineage {
            last,
            key,
            pid,
            parent_key,
            comm: schema.index("comm"),
            exepath: schema.index("exepath"),
            args: schema.index("args"),
            exits,
            forks,
            exec_id,
            parent_exec_id,
            start_time,
            node: node_name(),
            id_text: Vec::with_capacity(64),
            clock: Default::default(),
            parent_fields,
            ancestors,
            boot_offset_ns: boot_offset_ns(),
        })
    }

    fn image_key(&self, event: &Event) -> Option<ImageKey> {
        let key = event.get(self.key).as_u64()?;
        let pid = event.get(self.pid).as_u64()? as u32;
        (key != 0).then_some((key, pid))
    }

    fn parent_image_key(&self, event: &Event) -> Option<ImageKey> {
        let (k, p) = self.parent_key?;
        let key = event.get(k).as_u64()?;
        let pid = event.get(p).as_u64()? as u32;
        (key != 0).then_some((key, pid))
    }

    /// Updates the cache with a record, in ring order (before it may be held for its container).
    pub fn observe(&self, event: &Event, cache: &mut ProcessCache) {
        let Some(key) = self.image_key(event) else {
            return;
        };
        if self.exits {
            cache.exited(key);
            return;
        }
        // A failed exec names the image that tried: nothing new.
        let Some(parent) = self.parent_image_key(event) else {
            return;
        };
        let text = |i: Option<usize>| {
            i.and_then(|i| event.get(i).as_str())
                .unwrap_or_default()
                .to_string()
        };
        // The parent first: a clone that never exec'd is read from /proc while it runs.
        let inherited = cache
            .get_or_proc(parent)
            .map(|p| (p.exepath.clone(), p.args.clone()));
        let (exepath, args) = if self.forks {
            inherited.unwrap_or_default()
        } else {
            cache.replaced(key.1, parent);
            let args = match self.args.map(|i| event.get(i)) {
                Some(Value::List(items)) => items.clone(),
                _ => Vec::new(),
            };
            (text(self.exepath), args)
        };
        cache.insert(Image {
            exec_id: exec_id(cache.node(), key.0, key.1),
            pid: key.1,
            key: key.0,
            comm: text(self.comm),
            exepath,
            args,
            parent: Some(parent),
            fork: self.forks,
            ..Default::default()
        });
    }

    fn wall(&mut self, key: u64, out: &mut Value) {
        let ns = key as i128 + self.boot_offset_ns;
        self.clock.write(ns, out.str_buf());
    }

    /// The exec id of `key` into `out`: the cache's string when there is a cache (computed
    /// once per image), else built here without allocating (a run without --parent or
    /// --ancestors keeps no cache: ids come from the record's keys alone).
    fn exec_id_into(&mut self, key: ImageKey, cache: Option<&ProcessCache>, out: &mut Value) {
        if let Some(cache) = cache {
            return cache.exec_id_into(key, out);
        }
        self.id_text.clear();
        self.id_text.extend_from_slice(self.node.as_bytes());
        self.id_text.push(b':');
        self.id_text
            .extend_from_slice(itoa::Buffer::new().format(key.0).as_bytes());
        self.id_text.push(b':');
        self.id_text
            .extend_from_slice(itoa::Buffer::new().format(key.1).as_bytes());
        let buf = out.str_buf();
        base64::engine::general_purpose::STANDARD.encode_string(&self.id_text, buf);
    }

    /// Fills the lineage fields of an event about to be shown. Without a cache only the ids and
    /// the start time: parent and ancestor fields need one (the run keeps one for them).
    pub fn fill(&mut self, event: &mut Event, cache: Option<&mut ProcessCache>) {
        if event.values.len() <= self.last {
            event.values.resize(self.last + 1, Value::Null);
        }
        match self.image_key(event) {
            Some((key, pid)) => {
                self.exec_id_into(
                    (key, pid),
                    cache.as_deref(),
                    &mut event.values[self.exec_id],
                );
                self.wall(key, &mut event.values[self.start_time]);
            }
            None => {
                event.values[self.exec_id] = Value::Null;
                event.values[self.start_time] = Value::Null;
            }
        }
        let parent = self.parent_image_key(event);
        if let Some(i) = self.parent_exec_id {
            match parent {
                Some(k) => self.exec_id_into(k, cache.as_deref(), &mut event.values[i]),
                None => event.values[i] = Value::Null,
            }
        }
        let Some(cache) = cache else {
            return;
        };
        if let Some(f) = self.parent_fields {
            // Written in place: the event's string buffers are reused from one record to
            // the next.
            match parent {
                Some((k, p)) => {
                    cache.exec_id_into((k, p), &mut event.values[f[0]]);
                    event.values[f[1]] = Value::U64(p as u64);
                    self.wall(k, &mut event.values[f[5]]);
                    let _ = cache.get((k, p));
                    match cache.images.peek(&(k, p)).zip(cache.binary((k, p))) {
                        Some((image, (exepath, image_args))) => {
                            event.values[f[2]].assign_str(&image.comm);
                            event.values[f[3]].assign_str(exepath);
                            let mut args = ListFiller::new(&mut event.values[f[4]]);
                            for a in image_args {
                                args.push(a);
                            }
                        }
                        None => {
                            for i in &f[2..5] {
                                event.values[*i] = Value::Null;
                            }
                        }
                    }
                }
                None => {
                    for i in f {
                        event.values[i] = Value::Null;
                    }
                }
            }
        }
        if let Some((n, f)) = self.ancestors {
            let mut ids = std::mem::replace(&mut event.values[f[0]], Value::Null);
            let mut pids = std::mem::replace(&mut event.values[f[1]], Value::Null);
            let mut exes = std::mem::replace(&mut event.values[f[2]], Value::Null);
            {
                let mut ids = ListFiller::new(&mut ids);
                let mut pids = ListFiller::new(&mut pids);
                let mut exes = ListFiller::new(&mut exes);
                let mut next = parent;
                let mut seen = 0;
                while let Some((k, p)) = next {
                    if seen >= n {
                        break;
                    }
                    seen += 1;
                    match cache.get((k, p)) {
                        Some(image) => ids.push(&image.exec_id),
                        None => ids.push(&exec_id(cache.node(), k, p)),
                    }
                    pids.push(&p.to_string());
                    let _ = cache.get((k, p));
                    match cache.images.peek(&(k, p)).zip(cache.binary((k, p))) {
                        Some((image, (exepath, _))) => {
                            exes.push(exepath);
                            next = image.parent.filter(|q| *q != (k, p));
                        }
                        None => {
                            exes.push("");
                            next = None;
                        }
                    }
                }
            }
            event.values[f[0]] = ids;
            event.values[f[1]] = pids;
            event.values[f[2]] = exes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_id_is_base64_of_node_key_pid() {
        assert_eq!(exec_id("node", 12, 34), "bm9kZToxMjozNA==");
    }

    fn image(key: u64, pid: u32, parent: Option<ImageKey>) -> Image {
        Image {
            exec_id: exec_id("n", key, pid),
            pid,
            key,
            parent,
            ..Default::default()
        }
    }

    #[test]
    fn bounded_and_counts_children() {
        let mut cache = ProcessCache::new("n".into(), 3);
        cache.insert(image(1, 1, None));
        cache.insert(image(2, 2, Some((1, 1))));
        assert_eq!(cache.get((1, 1)).map(|i| i.children), Some(1));
        for k in 3..10 {
            cache.insert(image(k, k as u32, Some((2, 2))));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.evictions >= 6);
    }

    #[test]
    fn a_reused_pid_is_another_image() {
        let mut cache = ProcessCache::new("n".into(), 16);
        cache.insert(image(100, 7, None));
        cache.insert(image(200, 7, None));
        assert!(cache.get((100, 7)).is_some());
        assert!(cache.get((200, 7)).is_some());
        assert!(cache.get((300, 7)).is_none());
    }
}
