//! Gadget images in the store: writing one (index → one manifest per architecture → config
//! blob = gadget.yaml, layer = BPF object) and reading back the parts `ig run` needs.

use std::collections::{BTreeMap, BTreeSet};

use super::store::Store;
use super::types::*;
use super::{OciError, Reference};

/// The inputs of one gadget image.
pub struct ImageParts<'a> {
    pub metadata_yaml: &'a [u8],
    pub name: &'a str,
    pub description: &'a str,
    pub url: &'a str,
    pub documentation: &'a str,
    pub source: &'a str,
    /// RFC 3339, from SOURCE_DATE_EPOCH when set.
    pub created: String,
    /// (OCI architecture, object).
    pub objects: Vec<(&'a str, &'a [u8])>,
    /// More annotations for the index and manifests.
    pub extra_annotations: Vec<(&'a str, &'a str)>,
}

/// What `ig run` takes out of an image.
#[derive(Debug, Clone)]
pub struct GadgetImage {
    pub reference: String,
    pub index_digest: String,
    pub manifest_digest: String,
    pub metadata_yaml: Vec<u8>,
    pub object: Vec<u8>,
    pub created: Option<String>,
}

/// `created` for new images: `SOURCE_DATE_EPOCH` if set, else now.
pub fn created_now() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Our own document types always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Writes the blobs of an image and tags it. Returns the index descriptor.
pub fn write_image(
    store: &Store,
    reference: &Reference,
    parts: &ImageParts<'_>,
) -> Result<Descriptor, OciError> {
    let mut annotations = BTreeMap::new();
    for (key, value) in [
        (ANNOTATION_TITLE, parts.name),
        (ANNOTATION_DESCRIPTION, parts.description),
        (ANNOTATION_URL, parts.url),
        (ANNOTATION_DOCUMENTATION, parts.documentation),
        (ANNOTATION_SOURCE, parts.source),
        (ANNOTATION_CREATED, parts.created.as_str()),
    ] {
        if !value.is_empty() {
            annotations.insert(key.to_string(), value.to_string());
        }
    }
    for (key, value) in &parts.extra_annotations {
        annotations.insert(key.to_string(), value.to_string());
    }
    let _lock = store.lock()?;
    store.put_blob(parts.metadata_yaml)?;
    let config = Descriptor::new(MEDIA_CONFIG, parts.metadata_yaml);
    let mut manifests = Vec::new();
    for (arch, object) in &parts.objects {
        store.put_blob(object)?;
        let mut layer = Descriptor::new(MEDIA_EBPF, object);
        layer
            .annotations
            .insert(ANNOTATION_TITLE.into(), "program.o".into());
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            artifact_type: Some(ARTIFACT_GADGET.into()),
            config: config.clone(),
            layers: vec![layer],
            subject: None,
            annotations: annotations.clone(),
        };
        let bytes = to_json(&manifest);
        store.put_blob(&bytes)?;
        // No artifactType on the index entry: skopeo drops it when it re-serializes an index,
        // which would change the index digest (and void its signature) on `skopeo copy`.
        let mut desc = Descriptor::new(MEDIA_MANIFEST, &bytes);
        desc.platform = Some(Platform {
            architecture: arch.to_string(),
            os: "linux".into(),
        });
        manifests.push(desc);
    }
    let mut index = Index::new(manifests);
    index.annotations = annotations;
    let bytes = to_json(&index);
    store.put_blob(&bytes)?;
    let desc = Descriptor::new(MEDIA_INDEX, &bytes);
    store.set_tag(&reference.to_string(), desc.clone())?;
    Ok(desc)
}

fn parse_blob<T: serde::de::DeserializeOwned>(
    store: &Store,
    reference: &str,
    digest: &str,
) -> Result<T, OciError> {
    let bytes = store.blob(digest)?;
    serde_json::from_slice(&bytes).map_err(|e| OciError::Invalid {
        reference: reference.to_string(),
        reason: format!("{digest} is not a valid OCI document: {e}"),
    })
}

/// The manifest for `arch` of the image a descriptor points at (an index, or a lone manifest).
pub fn platform_manifest(
    store: &Store,
    reference: &str,
    desc: &Descriptor,
    arch: &str,
) -> Result<(Descriptor, Manifest), OciError> {
    if desc.media_type == MEDIA_MANIFEST {
        return Ok((desc.clone(), parse_blob(store, reference, &desc.digest)?));
    }
    let index: Index = parse_blob(store, reference, &desc.digest)?;
    let chosen = index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.architecture == arch && p.os == "linux")
        })
        .or_else(|| index.manifests.iter().find(|m| m.platform.is_none()))
        .ok_or_else(|| OciError::NoPlatform {
            reference: reference.to_string(),
            arch: arch.to_string(),
        })?;
    Ok((
        chosen.clone(),
        parse_blob(store, reference, &chosen.digest)?,
    ))
}

/// Reads the gadget for `arch` from the store, re-checking every digest on the way.
pub fn read_gadget(
    store: &Store,
    reference: &Reference,
    arch: &str,
) -> Result<GadgetImage, OciError> {
    let name = reference.to_string();
    let _lock = store.lock_shared()?;
    let desc = store
        .resolve(&name)?
        .ok_or_else(|| OciError::NotFound(name.clone()))?;
    let (mdesc, manifest) = platform_manifest(store, &name, &desc, arch)?;
    if manifest.config.media_type != MEDIA_CONFIG {
        return Err(OciError::Invalid {
            reference: name,
            reason: format!(
                "config has media type {}, not {MEDIA_CONFIG}",
                manifest.config.media_type
            ),
        });
    }
    let metadata_yaml = store.blob(&manifest.config.digest)?;
    let mut object = None;
    for layer in &manifest.layers {
        if layer.media_type == MEDIA_EBPF {
            object = Some(store.blob(&layer.digest)?);
        } else {
            eprintln!(
                "ig: warning: {name}: skipping layer of unknown type {}",
                layer.media_type
            );
        }
    }
    let object = object.ok_or_else(|| OciError::Invalid {
        reference: name.clone(),
        reason: format!("no layer of type {MEDIA_EBPF}"),
    })?;
    Ok(GadgetImage {
        reference: name,
        index_digest: desc.digest,
        manifest_digest: mdesc.digest,
        metadata_yaml,
        object,
        created: manifest.annotations.get(ANNOTATION_CREATED).cloned(),
    })
}

/// Adds every blob reachable from a descriptor to `keep` (for garbage collection and export).
pub fn reachable(store: &Store, desc: &Descriptor, keep: &mut BTreeSet<String>) {
    // A worklist, not recursion: an archive can nest indexes thousands deep (each with a valid
    // digest), which would overflow the stack.
    let mut todo = vec![desc.clone()];
    while let Some(desc) = todo.pop() {
        if !keep.insert(desc.digest.clone()) {
            continue;
        }
        let Ok(bytes) = store.blob(&desc.digest) else {
            continue;
        };
        if desc.media_type == MEDIA_INDEX {
            if let Ok(index) = serde_json::from_slice::<Index>(&bytes) {
                todo.extend(index.manifests);
            }
        } else if desc.media_type == MEDIA_MANIFEST {
            if let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) {
                keep.insert(manifest.config.digest.clone());
                for l in &manifest.layers {
                    keep.insert(l.digest.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod reachable_tests {
    use super::*;

    /// Indexes nested 5,000 deep (a hostile archive can hold them, each with a valid digest):
    /// walked without recursion, so no stack overflows on a test thread's 2 MiB stack.
    #[test]
    fn deeply_nested_indexes_are_walked_without_recursion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let mut desc = Descriptor::new(MEDIA_INDEX, b"{}");
        store.put_blob(b"{}").expect("put");
        for _ in 0..5_000 {
            let bytes = serde_json::to_vec(&Index::new(vec![desc])).expect("json");
            store.put_blob(&bytes).expect("put");
            desc = Descriptor::new(MEDIA_INDEX, &bytes);
        }
        let mut keep = BTreeSet::new();
        reachable(&store, &desc, &mut keep);
        assert_eq!(keep.len(), 5_001);
    }
}
