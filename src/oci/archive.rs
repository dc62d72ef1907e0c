//! `ig image export` / `ig image import`: a tar of a standard OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) holding the chosen images and their signatures, for machines
//! without a registry. Export is deterministic: entries are sorted, timestamps, owners and modes
//! fixed, so the same images give the same bytes. `skopeo copy oci-archive:FILE:REF …` reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use super::content;
use super::dist_error::DistError;
use super::image::reachable;
use super::sign::signature_reference;
use super::store::Store;
use super::types::{Descriptor, Index, Manifest, ANNOTATION_REF_NAME, MEDIA_INDEX, MEDIA_MANIFEST};
use super::{digest_of, OciError, Reference};
use crate::fsutil::{Mode, OutputFile};

const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Largest archive member accepted on import.
const MAX_MEMBER: u64 = 1 << 30;

/// An import or export error; whatever came from the archive in `reason` is escaped.
fn archive_err(path: &str, reason: impl Into<String>) -> DistError {
    DistError::Archive {
        path: printable(path),
        reason: printable(&reason.into()),
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

/// Exports to a file, or to stdout for `-`. The file is written by [`crate::fsutil`]'s rules:
/// a regular file is replaced atomically, a FIFO or character device (`/dev/null`) is written
/// through, a symbolic link is followed.
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
    let mut out = OutputFile::create(path, Mode::Default)?;
    let written = export(store, references, std::io::BufWriter::new(&mut out), &label)?;
    out.commit()?;
    Ok(written)
}

/// Text taken from an archive (entry names, header bytes in the tar reader's messages, tags,
/// digests and media types from `index.json`) as it is safe to print, by ig's one escaping rule
/// (`crate::output::escape_control`): an archive cannot move the cursor, retitle the terminal
/// or fake lines of our messages.
fn printable(s: &str) -> String {
    crate::output::escape_control(s).into_owned()
}

/// Compressed files users hand to `ig image import` by mistake: magic, format, the tool.
const COMPRESSED: [(&[u8], &str, &str); 4] = [
    (b"\x1f\x8b\x08", "gzip", "gunzip"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
    (b"BZh", "bzip2", "bunzip2"),
];

/// Counts what the tar reader consumed and notes whether the input ran out: the tar reader
/// stops at the first end-of-archive block without reading further, so running out means the
/// archive was cut short.
struct Counting<R> {
    inner: R,
    read: u64,
    eof: bool,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads up to `n` bytes (fewer only at the end of the input).
fn peek(input: &mut impl Read, n: usize, label: &str) -> Result<Vec<u8>, DistError> {
    let mut head = vec![0; n];
    let mut got = 0;
    while got < n {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(archive_err(label, e.to_string())),
        }
    }
    head.truncate(got);
    Ok(head)
}

/// Checks every descriptor an image reaches against the content it names, exactly as a pull
/// does ([`content::check`]: size and digest), taking content from the archive, else from the
/// local store. Adds the digests reached to `needed`.
fn check_image(
    store: &Store,
    blobs: &BTreeMap<String, Vec<u8>>,
    label: &str,
    name: &str,
    top: &Descriptor,
    needed: &mut BTreeSet<String>,
) -> Result<(), DistError> {
    let mut local: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let top_role = if top.media_type == MEDIA_INDEX {
        "index"
    } else {
        "manifest"
    };
    let mut todo = vec![(top.clone(), top_role)];
    while let Some((desc, role)) = todo.pop() {
        let digest = &desc.digest;
        if !content::is_sha256(digest) {
            return Err(archive_err(
                label,
                format!("image {name}: {role} digest {digest:?} is not sha256:<64 hex digits>"),
            ));
        }
        if !blobs.contains_key(digest) && !local.contains_key(digest) {
            match store.blob(digest) {
                Ok(bytes) => {
                    local.insert(digest.clone(), bytes);
                }
                Err(OciError::MissingBlob(_)) => {
                    return Err(DistError::ArchiveMissingBlob {
                        path: printable(label),
                        reference: name.to_string(),
                        digest: digest.clone(),
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
        let bytes = blobs
            .get(digest)
            .or_else(|| local.get(digest))
            .map(Vec::as_slice)
            .unwrap_or_default();
        content::check(&desc, bytes)
            .map_err(|m| archive_err(label, format!("image {name}: {role} {digest} {m}")))?;
        if !needed.insert(digest.clone()) {
            continue;
        }
        let invalid = |e: serde_json::Error| {
            archive_err(
                label,
                format!("image {name}: {role} {digest} is not a valid OCI document: {e}"),
            )
        };
        if desc.media_type == MEDIA_INDEX {
            let index: Index = serde_json::from_slice(bytes).map_err(invalid)?;
            for m in index.manifests {
                todo.push((m, "manifest"));
            }
        } else if desc.media_type == MEDIA_MANIFEST {
            let manifest: Manifest = serde_json::from_slice(bytes).map_err(invalid)?;
            todo.push((manifest.config, "config"));
            for layer in manifest.layers {
                todo.push((layer, "layer"));
            }
        }
    }
    Ok(())
}

/// The members of an OCI-layout tar: blobs (each checked against its name), `index.json`, and
/// whether `oci-layout` was there.
type Members = (BTreeMap<String, Vec<u8>>, Option<Index>, bool);

fn read_members(input: impl Read, label: &str) -> Result<Members, DistError> {
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut index: Option<Index> = None;
    let mut layout_seen = false;
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| archive_err(label, e.to_string()))?;
    for (n, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| match n {
            0 => archive_err(label, format!("not a tar archive ({e})")),
            _ => archive_err(label, e.to_string()),
        })?;
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
            .map_err(|e| archive_err(label, format!("{path}: {e}")))?;
        if size > MAX_MEMBER {
            return Err(archive_err(
                label,
                format!("{path} is too large ({size} bytes)"),
            ));
        }
        // The header's size is a claim: memory grows with what actually arrives.
        let mut bytes = Vec::with_capacity(size.min(1 << 20) as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| archive_err(label, format!("{path}: {e}")))?;
        if (bytes.len() as u64) < size {
            return Err(DistError::ArchiveTruncated {
                path: printable(label),
                detail: printable(&format!(
                    "{path} ends after {} of its {size} bytes",
                    bytes.len()
                )),
            });
        }
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            let digest = format!("sha256:{hex}");
            if !content::is_sha256(&digest) {
                return Err(archive_err(
                    label,
                    format!("{path} is not named by a sha256 digest"),
                ));
            }
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
    Ok((blobs, index, layout_seen))
}

/// Reads an OCI-layout tar into the store. Every blob is checked against its name; every tagged
/// image is walked and each descriptor checked against its content (size and digest, as a pull
/// checks them) and must be complete; a tag listed twice for different images is refused. Then
/// the blobs the tags reach are stored and the tags set, under the lock. Returns the tags.
pub fn import(store: &Store, mut input: impl Read, label: &str) -> Result<Vec<String>, DistError> {
    let head = peek(&mut input, 8, label)?;
    if head.is_empty() {
        return Err(archive_err(label, "empty: not a tar archive"));
    }
    if let Some((_, format, tool)) = COMPRESSED.iter().find(|(m, _, _)| head.starts_with(m)) {
        return Err(DistError::ArchiveCompressed {
            path: printable(label),
            format,
            tool,
        });
    }
    let mut counting = Counting {
        inner: std::io::Cursor::new(head).chain(input),
        read: 0,
        eof: false,
    };
    let truncated = |detail: String| DistError::ArchiveTruncated {
        path: printable(label),
        detail: printable(&detail),
    };
    let (blobs, index, layout_seen) = read_members(&mut counting, label).map_err(|e| match e {
        // The reader stopped inside a header: the input ran out there.
        DistError::Archive { reason, .. } if counting.eof => truncated(format!(
            "it ends after {} bytes, inside a tar header ({reason})",
            counting.read
        )),
        e => e,
    })?;
    // The input ran out where a header should have been: no end-of-archive blocks.
    let cut_short = counting.eof;
    let missing = |what: &str| {
        if cut_short {
            truncated(format!(
                "it ends after {} bytes without tar's end-of-archive blocks, and has no {what}",
                counting.read
            ))
        } else {
            archive_err(label, format!("no {what}: not an OCI image layout"))
        }
    };
    let index = index.ok_or_else(|| missing("index.json"))?;
    if !layout_seen {
        return Err(missing("oci-layout file"));
    }
    let mut tags: BTreeMap<String, Descriptor> = BTreeMap::new();
    for desc in index.manifests {
        let Some(name) = desc.annotations.get(ANNOTATION_REF_NAME).cloned() else {
            eprintln!(
                "ig: warning: archive {}: skipping untagged image {}",
                printable(label),
                printable(&desc.digest)
            );
            continue;
        };
        let reference = Reference::parse(&name).map_err(|e| archive_err(label, e.to_string()))?;
        let name = reference.to_string();
        if desc.media_type != MEDIA_INDEX && desc.media_type != MEDIA_MANIFEST {
            return Err(archive_err(
                label,
                format!("{name} has media type {}", desc.media_type),
            ));
        }
        let desc = Descriptor {
            annotations: BTreeMap::new(),
            ..desc
        };
        match tags.get(&name) {
            Some(first) if first.digest != desc.digest => {
                return Err(DistError::ArchiveDuplicateTag {
                    path: printable(label),
                    tag: name,
                    first: printable(&first.digest),
                    second: printable(&desc.digest),
                })
            }
            // The same image listed twice is one tag.
            Some(_) => {}
            None => {
                tags.insert(name, desc);
            }
        }
    }
    let _lock = store.lock()?;
    let mut needed = BTreeSet::new();
    for (name, desc) in &tags {
        check_image(store, &blobs, label, name, desc, &mut needed)?;
    }
    for (digest, bytes) in &blobs {
        if needed.contains(digest) {
            store.put_blob(bytes)?;
        }
    }
    for (name, desc) in &tags {
        store.set_tag(name, desc.clone())?;
    }
    Ok(tags.into_keys().collect())
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

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn archive_text_is_printed_escaped() {
        assert_eq!(
            printable("blobs/a\x1b]0;pwned\x07"),
            "blobs/a\\x1b]0;pwned\\x07"
        );
        assert_eq!(printable("evil\u{202e}rat.exe"), "evil\\u202erat.exe");
        assert_eq!(printable("c1\u{9b}2J"), "c1\\x9b2J");
        assert_eq!(printable("fine-näme"), "fine-näme");
    }
}
