//! Names every buffer BPF opened and closes the ones the run does not record.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use libbpf_rs::MapCore;

use super::{
    close_slot, container_by_cgroup, key_bytes, slot_pids, slots, NsKey, Records, Slot,
    RESOLVE_FOR, RETRY_EVERY, SLOTS,
};
use crate::containers::{Container, ContainerCollection, MntnsKey};
use crate::gadget::loader::LoadedGadget;
use crate::run::selection::Selection;
use crate::run::RunError;

/// Classifies every buffer BPF opened: a selected container keeps it; anything else (another
/// container, a namespace that is no container) is closed and filtered in the kernel from then
/// on, so it cannot take the slots the selected containers need.
pub(super) struct Scan {
    pub(super) records: Records,
    pub(super) host: bool,
    pub(super) host_mntns: Option<MntnsKey>,
    pub(super) collection: Option<Arc<ContainerCollection>>,
    pub(super) handle: Option<tokio::runtime::Handle>,
    /// namespace → (first seen, last resolution try, settled).
    pub(super) seen: HashMap<NsKey, (Instant, Instant, bool)>,
    pub(super) named: HashMap<NsKey, Arc<Container>>,
    /// Namespaces settled as recorded (selected).
    pub(super) kept: HashSet<NsKey>,
    /// Namespaces closed here, and when dead namespaces were last looked for.
    pub(super) closed: Vec<NsKey>,
    pub(super) last_sweep: Instant,
}

impl Scan {
    /// A closed namespace that died is forgotten (its entry only takes room: a new namespace
    /// with its inode has another id).
    fn sweep(&mut self, loaded: &LoadedGadget) {
        if self.last_sweep.elapsed() < crate::run::selection::SWEEP_EVERY || self.closed.is_empty()
        {
            return;
        }
        self.last_sweep = Instant::now();
        let alive = crate::run::selection::live_namespaces();
        if alive.is_empty() {
            return;
        }
        let seen = &mut self.seen;
        let Ok(map) = loaded.map(SLOTS) else {
            return;
        };
        self.closed.retain(|key| {
            if alive.contains(&key.inum) {
                return true;
            }
            let _ = map.delete(&key_bytes(*key));
            seen.remove(key);
            false
        });
    }

    fn close(&mut self, loaded: &LoadedGadget, slot: &Slot) -> Result<(), RunError> {
        close_slot(loaded, slot)?;
        self.closed.push(slot.key());
        Ok(())
    }

    /// One pass over the buffers; returns the slots map as read at its start (a slot closed
    /// by this pass is not in `kept`).
    pub(super) fn run(
        &mut self,
        loaded: &LoadedGadget,
        selection: &Selection,
    ) -> Result<Vec<Slot>, RunError> {
        self.sweep(loaded);
        let all = slots(loaded)?;
        for &slot in &all {
            if slot.closed() {
                continue;
            }
            let mntns = slot.mntns;
            // Where the runtimes cannot give ids (no NS_GET_MNTNS_ID), a container is known by
            // inode alone: it is the newest namespace's of that inode (mnt_namespace.seq, the id
            // BPF reads on those kernels, only grows; 6.18's ns_id does not, but has the ioctl).
            let inode_is_ours = !all.iter().any(|o| o.mntns == mntns && o.ns_id > slot.ns_id);
            let now = Instant::now();
            let entry = self
                .seen
                .entry(slot.key())
                .or_insert((now, now - RETRY_EVERY, false));
            if entry.2 {
                continue;
            }
            if self.host_mntns.is_some_and(|h| h.matches(&slot.key())) {
                entry.2 = true;
                if !self.host {
                    self.close(loaded, &slot)?;
                }
                continue;
            }
            if let Some(c) = self
                .collection
                .as_ref()
                .and_then(|c| c.lookup_live_mntns(slot.key()))
                .filter(|c| inode_is_ours || c.mntns_nsid != 0)
            {
                entry.2 = true;
                self.settle(loaded, &slot, Some(c), selection)?;
                continue;
            }
            let (first, last) = (entry.0, entry.1);
            if now.duration_since(first) > RESOLVE_FOR || self.collection.is_none() {
                entry.2 = true;
                let c = container_by_cgroup(
                    loaded,
                    self.collection.as_deref(),
                    self.handle.as_ref(),
                    slot.slot,
                    mntns,
                );
                self.settle(loaded, &slot, c, selection)?;
                continue;
            }
            if now.duration_since(last) < RETRY_EVERY {
                continue;
            }
            entry.1 = now;
            // The cgroup BPF noted names the container, also one already gone.
            if let Some(c) = container_by_cgroup(
                loaded,
                self.collection.as_deref(),
                self.handle.as_ref(),
                slot.slot,
                mntns,
            ) {
                entry.2 = true;
                self.settle(loaded, &slot, Some(c), selection)?;
                continue;
            }
            // Ask while its processes live: their cgroup names the container.
            if let (Some(col), Some(h)) = (&self.collection, &self.handle) {
                for pid in slot_pids(loaded, &self.records, slot.slot)? {
                    let col = col.clone();
                    h.spawn(async move {
                        col.resolve_pid(pid).await;
                    });
                }
            }
        }
        Ok(all)
    }

    fn settle(
        &mut self,
        loaded: &LoadedGadget,
        slot: &Slot,
        c: Option<Arc<Container>>,
        selection: &Selection,
    ) -> Result<(), RunError> {
        let keep = selection.shows(slot.key(), c.as_deref());
        if let Some(c) = c {
            self.named.insert(slot.key(), c);
        }
        if keep {
            self.kept.insert(slot.key());
        } else {
            self.close(loaded, slot)?;
        }
        Ok(())
    }
}
