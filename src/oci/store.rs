//! The local store: a standard OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`).
//! Each tag is an `index.json` entry whose `org.opencontainers.image.ref.name` is the fully
//! qualified reference. Mutations hold an exclusive `flock` on `.lock`; blobs are written to a
//! temporary file and renamed, and re-hashed whenever they are read.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::types::{Descriptor, Index, ANNOTATION_REF_NAME};
use super::{digest_of, OciError};

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Held while the store is being changed (or read consistently); released on drop.
pub struct StoreLock {
    _file: File,
}

fn flock(file: &File, op: i32, path: &Path) -> Result<(), OciError> {
    loop {
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(OciError::Io {
                path: path.to_path_buf(),
                source: err,
            });
        }
    }
}

impl Store {
    /// `IG_STORE`, else `/var/lib/ig/oci-store` for root, else `$HOME/.local/share/ig/oci-store`.
    pub fn default_root() -> PathBuf {
        if let Ok(dir) = std::env::var("IG_STORE") {
            if !dir.is_empty() {
                return PathBuf::from(dir);
            }
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return PathBuf::from("/var/lib/ig/oci-store");
        }
        let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
        PathBuf::from(home).join(".local/share/ig/oci-store")
    }

    pub fn open(root: impl Into<PathBuf>) -> Result<Self, OciError> {
        let root = root.into();
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(OciError::io(&blobs))?;
        let store = Store { root };
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            store.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = store.root.join("index.json");
        if !index.exists() {
            let _lock = store.lock()?;
            if !index.exists() {
                store.write_index(&Index::new(Vec::new()))?;
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lock(&self) -> Result<StoreLock, OciError> {
        self.lock_with(libc::LOCK_EX)
    }

    pub fn lock_shared(&self) -> Result<StoreLock, OciError> {
        self.lock_with(libc::LOCK_SH)
    }

    fn lock_with(&self, op: i32) -> Result<StoreLock, OciError> {
        let path = self.root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(OciError::io(&path))?;
        flock(&file, op, &path)?;
        Ok(StoreLock { _file: file })
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), OciError> {
        let dir = path.parent().unwrap_or(&self.root);
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(OciError::io(dir))?;
        tmp.write_all(bytes).map_err(OciError::io(path))?;
        tmp.as_file().sync_all().map_err(OciError::io(path))?;
        tmp.persist(path).map_err(|e| OciError::Io {
            path: path.to_path_buf(),
            source: e.error,
        })?;
        Ok(())
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, OciError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| OciError::Invalid {
                reference: digest.into(),
                reason: "not a sha256 digest".into(),
            })?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Stores a blob (idempotent) and returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, OciError> {
        let digest = digest_of(bytes);
        let path = self.blob_path(&digest)?;
        if !path.exists() {
            self.write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    /// Reads a blob and checks that it still hashes to its digest.
    pub fn blob(&self, digest: &str) -> Result<Vec<u8>, OciError> {
        let path = self.blob_path(digest)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OciError::MissingBlob(digest.to_string()))
            }
            Err(e) => return Err(OciError::Io { path, source: e }),
        };
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(OciError::Corrupted {
                digest: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub fn read_index(&self) -> Result<Index, OciError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(OciError::io(&path))?;
        serde_json::from_slice(&bytes).map_err(|source| OciError::Json { path, source })
    }

    /// Call with the lock held.
    pub fn write_index(&self, index: &Index) -> Result<(), OciError> {
        let path = self.root.join("index.json");
        let bytes = serde_json::to_vec(index).map_err(|source| OciError::Json {
            path: path.clone(),
            source,
        })?;
        self.write_atomic(&path, &bytes)
    }

    /// Every tag: (reference, descriptor).
    pub fn tags(&self) -> Result<Vec<(String, Descriptor)>, OciError> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|d| Some((d.annotations.get(ANNOTATION_REF_NAME)?.clone(), d)))
            .collect())
    }

    pub fn resolve(&self, reference: &str) -> Result<Option<Descriptor>, OciError> {
        Ok(self
            .tags()?
            .into_iter()
            .find(|(r, _)| r == reference)
            .map(|(_, d)| d))
    }

    /// Points `reference` at `desc`. Call with the lock held.
    pub fn set_tag(&self, reference: &str, mut desc: Descriptor) -> Result<(), OciError> {
        let mut index = self.read_index()?;
        index.manifests.retain(|d| {
            d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(reference)
        });
        desc.annotations
            .insert(ANNOTATION_REF_NAME.to_string(), reference.to_string());
        index.manifests.push(desc);
        self.write_index(&index)
    }

    /// Removes a tag; returns whether it existed. Call with the lock held.
    pub fn remove_tag(&self, reference: &str) -> Result<bool, OciError> {
        let mut index = self.read_index()?;
        let before = index.manifests.len();
        index.manifests.retain(|d| {
            d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(reference)
        });
        let removed = index.manifests.len() != before;
        if removed {
            self.write_index(&index)?;
        }
        Ok(removed)
    }

    /// Deletes blobs no tag reaches. Call with the lock held.
    pub fn gc(
        &self,
        reachable_from: impl Fn(&Store, &Descriptor, &mut BTreeSet<String>),
    ) -> Result<usize, OciError> {
        let mut keep = BTreeSet::new();
        for (_, desc) in self.tags()? {
            reachable_from(self, &desc, &mut keep);
        }
        let dir = self.root.join("blobs/sha256");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(OciError::io(&dir))? {
            let entry = entry.map_err(OciError::io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && !keep.contains(&format!("sha256:{name}")) {
                fs::remove_file(entry.path()).map_err(OciError::io(entry.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
