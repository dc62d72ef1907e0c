//! `ig image export` / `ig image import`: a tar of a standard OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) holding the chosen images and their signatures, for machines
//! without a registry. Export is deterministic: entries are sorted, timestamps, owners and modes
//! fixed, so the same images give the same bytes. `skopeo copy oci-archive:FILE:REF …` reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use super::dist_error::DistError;
use super::image::reachable;
use super::sign::signature_reference;
use super::store::Store;
use super::types::{Descriptor, Index, ANNOTATION_REF_NAME, MEDIA_INDEX, MEDIA_MANIFEST};
use super::{digest_of, OciError, Reference};

const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Largest archive member accepted on import.
const MAX_MEMBER: u64 = 1 << 30;

fn archive_err(path: &str, reason: impl Into<String>) -> DistError {
    DistError::Archive {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn append(
    builder: &mut tar::Builder<impl Write>,
    path: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(), DistError> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, name, bytes)
        .map_err(|e| archive_err(path, e.to_string()))
}

fn append_dir(
    builder: &mut tar::Builder<impl Write>,
    path: &str,
    name: &str,
) -> Result<(), DistError> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, name, std::io::empty())
        .map_err(|e| archive_err(path, e.to_string()))
}

/// Writes the images `references` name (and their signatures) as an OCI-layout tar to `out`.
/// `label` names the destination in messages. Returns the references written.
pub fn export(
    store: &Store,
    references: &[Reference],
    out: impl Write,
    label: &str,
) -> Result<Vec<String>, DistError> {
    let mut entries: BTreeMap<String, Descriptor> = BTreeMap::new();
    let mut blobs = BTreeSet::new();
    {
        let _lock = store.lock_shared()?;
        for r in references {
            let name = r.to_string();
            let desc = store
                .resolve(&name)?
                .ok_or_else(|| OciError::NotFound(name.clone()))?;
            let sig_name = signature_reference(r, &desc.digest).to_string();
            if let Some(sig) = store.resolve(&sig_name)? {
                reachable(store, &sig, &mut blobs);
                entries.insert(sig_name, sig);
            }
            reachable(store, &desc, &mut blobs);
            entries.insert(name, desc);
        }
    }
    let manifests = entries
        .into_iter()
        .map(|(name, d)| {
            let mut desc = Descriptor {
                media_type: d.media_type,
                digest: d.digest,
                size: d.size,
                artifact_type: d.artifact_type,
                platform: None,
                annotations: BTreeMap::new(),
            };
            desc.annotations
                .insert(ANNOTATION_REF_NAME.to_string(), name.clone());
            desc
        })
        .collect::<Vec<_>>();
    let written: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.annotations.get(ANNOTATION_REF_NAME).cloned())
        .collect();
    let index = serde_json::to_vec(&Index::new(manifests))
        .map_err(|e| archive_err(label, e.to_string()))?;
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    append_dir(&mut builder, label, "blobs/")?;
    append_dir(&mut builder, label, "blobs/sha256/")?;
    for digest in &blobs {
        // Re-hashed on read: a corrupted store is not exported.
        let bytes = store.blob(digest)?;
        let hex = digest.trim_start_matches("sha256:");
        append(&mut builder, label, &format!("blobs/sha256/{hex}"), &bytes)?;
    }
    append(&mut builder, label, "index.json", &index)?;
    append(&mut builder, label, "oci-layout", LAYOUT)?;
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| archive_err(label, e.to_string()))?;
    Ok(written)
}

/// Exports to a file (written next to it, then renamed), or to stdout for `-`.
pub fn export_to(
    store: &Store,
    references: &[Reference],
    path: &Path,
) -> Result<Vec<String>, DistError> {
    let label = path.display().to_string();
    if label == "-" {
        let stdout = std::io::stdout();
        return export(store, references, stdout.lock(), "-");
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(DistError::io(dir))?;
    let written = export(
        store,
        references,
        std::io::BufWriter::new(tmp.as_file_mut()),
        &label,
    )?;
    tmp.as_file().sync_all().map_err(DistError::io(path))?;
    tmp.persist(path).map_err(|e| DistError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(written)
}

/// Reads an OCI-layout tar into the store: every blob is checked against its name, every tagged
/// image must be complete, then blobs and tags are stored under the lock. Returns the tags.
pub fn import(store: &Store, input: impl Read, label: &str) -> Result<Vec<String>, DistError> {
    let mut archive = tar::Archive::new(input);
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut index: Option<Index> = None;
    let mut layout_seen = false;
    let entries = archive
        .entries()
        .map_err(|e| archive_err(label, e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(label, e.to_string()))?;
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| archive_err(label, e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let path = path.trim_start_matches("./").to_string();
        let size = entry
            .header()
            .size()
            .map_err(|e| archive_err(label, e.to_string()))?;
        if size > MAX_MEMBER {
            return Err(archive_err(
                label,
                format!("{path} is too large ({size} bytes)"),
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| archive_err(label, format!("{path}: {e}")))?;
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            let digest = format!("sha256:{hex}");
            let actual = digest_of(&bytes);
            if actual != digest {
                return Err(archive_err(
                    label,
                    format!("{path} does not match its digest (content hashes to {actual})"),
                ));
            }
            blobs.insert(digest, bytes);
        } else if path == "index.json" {
            index = Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| archive_err(label, format!("index.json: {e}")))?,
            );
        } else if path == "oci-layout" {
            layout_seen = true;
        }
    }
    let index =
        index.ok_or_else(|| archive_err(label, "no index.json: not an OCI image layout"))?;
    if !layout_seen {
        return Err(archive_err(
            label,
            "no oci-layout file: not an OCI image layout",
        ));
    }
    let mut tags = Vec::new();
    for desc in index.manifests {
        let Some(name) = desc.annotations.get(ANNOTATION_REF_NAME).cloned() else {
            eprintln!(
                "ig: warning: {label}: skipping untagged image {}",
                desc.digest
            );
            continue;
        };
        if desc.media_type != MEDIA_INDEX && desc.media_type != MEDIA_MANIFEST {
            return Err(archive_err(
                label,
                format!("{name} has media type {}", desc.media_type),
            ));
        }
        let reference = Reference::parse(&name)?;
        tags.push((
            reference.to_string(),
            Descriptor {
                annotations: BTreeMap::new(),
                ..desc
            },
        ));
    }
    let _lock = store.lock()?;
    for bytes in blobs.values() {
        store.put_blob(bytes)?;
    }
    for (name, desc) in &tags {
        let mut needed = BTreeSet::new();
        reachable(store, desc, &mut needed);
        for d in &needed {
            store
                .blob(d)
                .map_err(|e| archive_err(label, format!("{name}: {e}")))?;
        }
    }
    for (name, desc) in &tags {
        store.set_tag(name, desc.clone())?;
    }
    Ok(tags.into_iter().map(|(n, _)| n).collect())
}

/// Imports from a file, or stdin for `-`.
pub fn import_from(store: &Store, path: &Path) -> Result<Vec<String>, DistError> {
    let label = path.display().to_string();
    if label == "-" {
        return import(store, std::io::stdin().lock(), "-");
    }
    let file = std::fs::File::open(path).map_err(DistError::io(path))?;
    import(store, std::io::BufReader::new(file), &label)
}
