//! Moving images between the local store and registries: `pull`, `push`, and `ensure_local`
//! (what `ig run --pull always|missing|never` calls). Every architecture of an index moves,
//! with the image's signature (`sha256-<hex>.sig`) when there is one.
//!
//! Pulls download into memory (gadget blobs are small), check each blob against its digest,
//! then store blobs and tag under the store lock in one step, so a concurrent `ig image remove`
//! (whose garbage collection also holds the lock) never sees a half-pulled image.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use indicatif::{ProgressBar, ProgressStyle};

use super::content;
use super::dist_error::DistError;
use super::registry::{Access, RawManifest, Registry, RegistryOptions, MAX_MANIFEST};
use super::sign::{signature_reference, signature_tag};
use super::store::Store;
use super::types::{Descriptor, Index, Manifest, MEDIA_INDEX, MEDIA_MANIFEST};
use super::{OciError, Reference};

/// When `ig run` contacts the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Always pull (the local copy is refreshed).
    Always,
    /// Pull only when the image is not in the local store.
    #[default]
    Missing,
    /// Never pull; fail when the image is not local.
    Never,
}

impl FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "invalid pull policy {other:?}: expected always, missing or never"
            )),
        }
    }
}

/// What a pull brought in.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub reference: Reference,
    pub descriptor: Descriptor,
    /// Architectures in the index.
    pub platforms: Vec<String>,
    pub signed: bool,
    /// Bytes downloaded (blobs already in the store are skipped).
    pub downloaded: u64,
}

/// What a push sent.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub reference: Reference,
    pub digest: String,
    pub signed: bool,
    pub uploaded: u64,
}

/// Makes sure `reference` is in the local store according to `policy`; returns its descriptor.
pub async fn ensure_local(
    store: &Store,
    reference: &Reference,
    policy: PullPolicy,
    opts: &RegistryOptions,
) -> Result<Descriptor, DistError> {
    let local = store.resolve(&reference.to_string())?;
    match (policy, local) {
        (PullPolicy::Never, Some(d)) | (PullPolicy::Missing, Some(d)) => Ok(d),
        (PullPolicy::Never, None) => Err(DistError::NotLocal {
            reference: reference.to_string(),
        }),
        (PullPolicy::Missing, None) | (PullPolicy::Always, _) => {
            Ok(pull(store, reference, opts).await?.descriptor)
        }
    }
}

fn bar(opts: &RegistryOptions, label: &str, size: u64) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(size);
    let style = ProgressStyle::with_template("{msg:20} [{bar:30}] {bytes}/{total_bytes}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(label.to_string());
    pb
}

fn short(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    hex[..hex.len().min(12)].to_string()
}

fn invalid(reference: &str, reason: String) -> DistError {
    DistError::Store(OciError::Invalid {
        reference: reference.to_string(),
        reason,
    })
}

/// A manifest (image or signature) and the blobs it needs.
struct Fetched {
    /// digest → bytes of the manifests and blobs to store.
    blobs: BTreeMap<String, Vec<u8>>,
    /// Every digest the image needs (including blobs already local).
    needed: BTreeSet<String>,
    downloaded: u64,
}

impl Fetched {
    fn new() -> Self {
        Fetched {
            blobs: BTreeMap::new(),
            needed: BTreeSet::new(),
            downloaded: 0,
        }
    }
}

async fn fetch_blob(
    reg: &Registry,
    store: &Store,
    opts: &RegistryOptions,
    desc: &Descriptor,
    out: &mut Fetched,
) -> Result<(), DistError> {
    out.needed.insert(desc.digest.clone());
    if let Some(bytes) = out.blobs.get(&desc.digest) {
        return check(reg, "blob", desc, bytes);
    }
    if store.has_blob(&desc.digest) {
        return check(reg, "blob", desc, &store.blob(&desc.digest)?);
    }
    let pb = bar(opts, &short(&desc.digest), desc.size);
    let bytes = reg.blob(&desc.digest, desc.size, &|n| pb.inc(n)).await;
    pb.finish_and_clear();
    let bytes = bytes?;
    check(reg, "blob", desc, &bytes)?;
    out.downloaded += bytes.len() as u64;
    out.blobs.insert(desc.digest.clone(), bytes);
    Ok(())
}

/// The content check every descriptor of a pulled image passes (the one import uses too).
fn check(reg: &Registry, what: &str, desc: &Descriptor, bytes: &[u8]) -> Result<(), DistError> {
    content::check(desc, bytes).map_err(|mismatch| DistError::Content {
        registry: reg.registry().to_string(),
        what: format!("{what} {}", desc.digest),
        mismatch,
    })
}

fn parse_manifest(name: &str, raw: &RawManifest) -> Result<Manifest, DistError> {
    serde_json::from_slice(&raw.bytes)
        .map_err(|e| invalid(name, format!("manifest {} is not valid: {e}", raw.digest)))
}

async fn fetch_manifest_tree(
    reg: &Registry,
    store: &Store,
    opts: &RegistryOptions,
    manifest: &Manifest,
    out: &mut Fetched,
) -> Result<(), DistError> {
    fetch_blob(reg, store, opts, &manifest.config, out).await?;
    for layer in &manifest.layers {
        fetch_blob(reg, store, opts, layer, out).await?;
    }
    Ok(())
}

/// Fetches an image (index or lone manifest) by tag or digest; returns its descriptor.
async fn fetch_image(
    reg: &Registry,
    store: &Store,
    opts: &RegistryOptions,
    name: &str,
    tag_or_digest: &str,
    out: &mut Fetched,
) -> Result<(Descriptor, Vec<String>), DistError> {
    let raw = reg.manifest(tag_or_digest).await?;
    let mut platforms = Vec::new();
    match raw.media_type.as_str() {
        MEDIA_INDEX => {
            let index: Index = serde_json::from_slice(&raw.bytes)
                .map_err(|e| invalid(name, format!("index {} is not valid: {e}", raw.digest)))?;
            for m in &index.manifests {
                if m.media_type != MEDIA_MANIFEST {
                    return Err(invalid(
                        name,
                        format!("index entry {} has media type {}", m.digest, m.media_type),
                    ));
                }
                let child = reg.manifest(&m.digest).await?;
                check(reg, "manifest", m, &child.bytes)?;
                let manifest = parse_manifest(name, &child)?;
                fetch_manifest_tree(reg, store, opts, &manifest, out).await?;
                out.needed.insert(child.digest.clone());
                out.blobs.insert(child.digest, child.bytes);
                if let Some(p) = &m.platform {
                    platforms.push(p.architecture.clone());
                }
            }
        }
        MEDIA_MANIFEST => {
            let manifest = parse_manifest(name, &raw)?;
            fetch_manifest_tree(reg, store, opts, &manifest, out).await?;
        }
        other => {
            return Err(invalid(
                name,
                format!(
                    "{} has media type {other:?}; gadget images are OCI indexes or manifests",
                    raw.digest
                ),
            ))
        }
    }
    let desc = Descriptor::new(&raw.media_type, &raw.bytes);
    out.needed.insert(raw.digest.clone());
    out.blobs.insert(raw.digest, raw.bytes);
    Ok((desc, platforms))
}

/// Stores fetched blobs and sets tags under the store lock. Returns the digests that went
/// missing meanwhile (another process collected them), to fetch again.
fn commit(
    store: &Store,
    fetched: &Fetched,
    tags: &[(String, Descriptor)],
) -> Result<Vec<String>, DistError> {
    let _lock = store.lock()?;
    for bytes in fetched.blobs.values() {
        store.put_blob(bytes)?;
    }
    let missing: Vec<String> = fetched
        .needed
        .iter()
        .filter(|d| !store.has_blob(d))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Ok(missing);
    }
    for (name, desc) in tags {
        store.set_tag(name, desc.clone())?;
    }
    Ok(Vec::new())
}

/// Pulls `reference` (every architecture, and its signature if the registry has one).
pub async fn pull(
    store: &Store,
    reference: &Reference,
    opts: &RegistryOptions,
) -> Result<Pulled, DistError> {
    let name = reference.to_string();
    let reg = Registry::connect(reference, Access::Pull, opts).await?;
    let wanted = reference
        .digest
        .clone()
        .unwrap_or_else(|| reference.tag.clone());
    for _attempt in 0..3 {
        let mut fetched = Fetched::new();
        let (desc, platforms) =
            fetch_image(&reg, store, opts, &name, &wanted, &mut fetched).await?;
        let mut tags = vec![(name.clone(), desc.clone())];
        let sig_tag = signature_tag(&desc.digest);
        let signed = match reg.manifest(&sig_tag).await {
            Ok(raw) if raw.media_type == MEDIA_MANIFEST || raw.media_type.is_empty() => {
                let manifest = parse_manifest(&name, &raw)?;
                fetch_manifest_tree(&reg, store, opts, &manifest, &mut fetched).await?;
                let sig_desc = Descriptor::new(MEDIA_MANIFEST, &raw.bytes);
                fetched.needed.insert(raw.digest.clone());
                fetched.blobs.insert(raw.digest, raw.bytes);
                tags.push((
                    signature_reference(reference, &desc.digest).to_string(),
                    sig_desc,
                ));
                true
            }
            Ok(_) | Err(DistError::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        if commit(store, &fetched, &tags)?.is_empty() {
            return Ok(Pulled {
                reference: reference.clone(),
                descriptor: desc,
                platforms,
                signed,
                downloaded: fetched.downloaded,
            });
        }
    }
    Err(invalid(
        &name,
        "blobs kept disappearing from the local store while pulling (concurrent removal?)".into(),
    ))
}

/// Reads and re-checks a local blob for upload.
fn local_json<T: serde::de::DeserializeOwned>(
    store: &Store,
    name: &str,
    digest: &str,
) -> Result<(Vec<u8>, T), DistError> {
    let bytes = store.blob(digest)?;
    let doc = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(name, format!("{digest} is not valid: {e}")))?;
    Ok((bytes, doc))
}

async fn upload_blob(
    reg: &Registry,
    store: &Store,
    opts: &RegistryOptions,
    desc: &Descriptor,
    uploaded: &mut u64,
) -> Result<(), DistError> {
    if reg.has_blob(&desc.digest).await? {
        return Ok(());
    }
    let bytes = store.blob(&desc.digest)?;
    let pb = bar(opts, &short(&desc.digest), bytes.len() as u64);
    let result = reg.put_blob(&desc.digest, &bytes).await;
    pb.inc(bytes.len() as u64);
    pb.finish_and_clear();
    result?;
    *uploaded += bytes.len() as u64;
    Ok(())
}

async fn upload_manifest(
    reg: &Registry,
    store: &Store,
    opts: &RegistryOptions,
    name: &str,
    desc: &Descriptor,
    tag: Option<&str>,
    uploaded: &mut u64,
) -> Result<(), DistError> {
    let (bytes, manifest): (Vec<u8>, Manifest) = local_json(store, name, &desc.digest)?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(invalid(
            name,
            format!("manifest {} is too large", desc.digest),
        ));
    }
    upload_blob(reg, store, opts, &manifest.config, uploaded).await?;
    for layer in &manifest.layers {
        upload_blob(reg, store, opts, layer, uploaded).await?;
    }
    reg.put_manifest(tag.unwrap_or(&desc.digest), MEDIA_MANIFEST, &bytes)
        .await
}

/// Pushes `reference` from the local store to its registry (every architecture, then the
/// index under its tag, then its signature if signed locally).
pub async fn push(
    store: &Store,
    reference: &Reference,
    opts: &RegistryOptions,
) -> Result<Pushed, DistError> {
    let name = reference.to_string();
    let (desc, sig_desc) = {
        let _lock = store.lock_shared()?;
        let desc = store
            .resolve(&name)?
            .ok_or_else(|| OciError::NotFound(name.clone()))?;
        let sig = store.resolve(&signature_reference(reference, &desc.digest).to_string())?;
        (desc, sig)
    };
    let reg = Registry::connect(reference, Access::Push, opts).await?;
    let mut uploaded = 0;
    let target = reference
        .digest
        .clone()
        .unwrap_or_else(|| reference.tag.clone());
    match desc.media_type.as_str() {
        MEDIA_INDEX => {
            let (bytes, index): (Vec<u8>, Index) = local_json(store, &name, &desc.digest)?;
            for m in &index.manifests {
                upload_manifest(&reg, store, opts, &name, m, None, &mut uploaded).await?;
            }
            reg.put_manifest(&target, MEDIA_INDEX, &bytes).await?;
        }
        MEDIA_MANIFEST => {
            upload_manifest(
                &reg,
                store,
                opts,
                &name,
                &desc,
                Some(&target),
                &mut uploaded,
            )
            .await?
        }
        other => return Err(invalid(&name, format!("cannot push media type {other}"))),
    }
    if let Some(sig) = &sig_desc {
        let tag = signature_tag(&desc.digest);
        upload_manifest(&reg, store, opts, &name, sig, Some(&tag), &mut uploaded).await?;
    }
    Ok(Pushed {
        reference: reference.clone(),
        digest: desc.digest,
        signed: sig_desc.is_some(),
        uploaded,
    })
}
