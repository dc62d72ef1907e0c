//! The identity of a mount namespace: its inode and its id.
//!
//! The inode (`mntns_id`, `/proc/<pid>/ns/mnt`, `ns_common.inum`) is what users compare, but the
//! kernel hands it to a new namespace as soon as one dies. The id (`NS_GET_MNTNS_ID`,
//! `ns_common.ns_id` since 6.18, `mnt_namespace.seq` before) comes from a 64-bit counter and
//! is never reused within a boot. Where an id is unknown (0: a kernel before the ioctl, a
//! gadget whose events carry only the inode), matching falls back to the inode alone, which
//! a namespace created later with the same inode also matches.

use std::collections::HashMap;
use std::fmt;

/// A mount namespace: inode and id (0 when unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MntnsKey {
    pub inum: u64,
    pub nsid: u64,
}

impl MntnsKey {
    pub const fn new(inum: u64, nsid: u64) -> Self {
        MntnsKey { inum, nsid }
    }

    /// Whether both may name one namespace: the same inode, and the same id where both know it.
    pub fn matches(&self, other: &MntnsKey) -> bool {
        self.inum == other.inum && (self.nsid == 0 || other.nsid == 0 || self.nsid == other.nsid)
    }

    /// `struct gadget_mntns_key` (bpf/gadget/mntns_filter.h): inum then nsid, little endian.
    pub fn to_bpf_bytes(self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.inum.to_le_bytes());
        k[8..].copy_from_slice(&self.nsid.to_le_bytes());
        k
    }
}

impl fmt::Display for MntnsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.nsid {
            0 => write!(f, "{}", self.inum),
            id => write!(f, "{} (id {id})", self.inum),
        }
    }
}

/// Values by mount namespace, looked up with [`MntnsKey::matches`]: an exact id first, else an
/// entry that does not know its id, else (for a key without id) the newest namespace of the
/// inode.
#[derive(Debug)]
pub struct MntnsMap<V> {
    by_inum: HashMap<u64, Vec<(u64, V)>>,
    len: usize,
}

impl<V> Default for MntnsMap<V> {
    fn default() -> Self {
        MntnsMap {
            by_inum: HashMap::new(),
            len: 0,
        }
    }
}

impl<V> MntnsMap<V> {
    pub fn get(&self, key: &MntnsKey) -> Option<&V> {
        let entries = self.by_inum.get(&key.inum)?;
        let position = |want: u64| entries.iter().position(|(id, _)| *id == want);
        let i = match key.nsid {
            0 => entries
                .iter()
                .enumerate()
                .max_by_key(|(_, (id, _))| *id)
                .map(|(i, _)| i),
            id => position(id).or_else(|| position(0)),
        }?;
        Some(&entries[i].1)
    }

    pub fn contains(&self, key: &MntnsKey) -> bool {
        self.get(key).is_some()
    }

    /// Sets the value of exactly this key; returns the previous one.
    pub fn insert(&mut self, key: MntnsKey, value: V) -> Option<V> {
        let entries = self.by_inum.entry(key.inum).or_default();
        if let Some(e) = entries.iter_mut().find(|(id, _)| *id == key.nsid) {
            return Some(std::mem::replace(&mut e.1, value));
        }
        entries.push((key.nsid, value));
        self.len += 1;
        None
    }

    /// Removes exactly this key.
    pub fn remove(&mut self, key: &MntnsKey) -> Option<V> {
        let entries = self.by_inum.get_mut(&key.inum)?;
        let i = entries.iter().position(|(id, _)| *id == key.nsid)?;
        let (_, v) = entries.swap_remove(i);
        if entries.is_empty() {
            self.by_inum.remove(&key.inum);
        }
        self.len -= 1;
        Some(v)
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = MntnsKey> + '_ {
        self.by_inum
            .iter()
            .flat_map(|(inum, v)| v.iter().map(|(id, _)| MntnsKey::new(*inum, *id)))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_tell_reused_inodes_apart() {
        let old = MntnsKey::new(4026532178, 6);
        let new = MntnsKey::new(4026532178, 4102);
        assert!(!old.matches(&new));
        assert!(old.matches(&MntnsKey::new(4026532178, 0)));
        assert!(!old.matches(&MntnsKey::new(4026532179, 6)));

        let mut m = MntnsMap::default();
        m.insert(old, "old");
        assert_eq!(m.get(&new), None, "a reused inode never inherits a value");
        m.insert(new, "new");
        assert_eq!(m.get(&old), Some(&"old"));
        assert_eq!(m.get(&new), Some(&"new"));
        // Without an id: the newest namespace of the inode.
        assert_eq!(m.get(&MntnsKey::new(4026532178, 0)), Some(&"new"));
        assert_eq!(m.len(), 2);
        assert_eq!(m.remove(&old), Some("old"));
        assert_eq!(m.get(&old), None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn entries_without_id_match_any_id() {
        let mut m = MntnsMap::default();
        m.insert(MntnsKey::new(7, 0), 1);
        assert_eq!(m.get(&MntnsKey::new(7, 99)), Some(&1));
        m.insert(MntnsKey::new(7, 99), 2);
        assert_eq!(m.get(&MntnsKey::new(7, 99)), Some(&2));
        assert_eq!(m.get(&MntnsKey::new(7, 98)), Some(&1));
        let mut keys: Vec<_> = m.keys().collect();
        keys.sort();
        assert_eq!(keys, vec![MntnsKey::new(7, 0), MntnsKey::new(7, 99)]);
    }

    #[test]
    fn bpf_layout() {
        let b = MntnsKey::new(0x0102, 0x0304).to_bpf_bytes();
        assert_eq!(&b[..2], &[2, 1]);
        assert_eq!(&b[8..10], &[4, 3]);
    }
}
