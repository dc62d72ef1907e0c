//! The built-in gadgets and gadget API headers, embedded at build time (see `build.rs`).
//! A reference to a built-in gadget under the default repository that is missing from the local
//! store is seeded from here, so `ig run trace_exec` works offline with no registry.

use std::path::Path;

use crate::oci::image::{self, ImageParts};
use crate::oci::{OciError, Reference, Store};

pub struct BuiltinGadget {
    pub name: &'static str,
    pub metadata: &'static [u8],
    /// (OCI architecture, stripped BPF object).
    pub objects: &'static [(&'static str, &'static [u8])],
}

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Writes the embedded headers (`gadget/*.h`, `<arch>/vmlinux.h`) under `dir`.
pub fn write_headers(dir: &Path) -> std::io::Result<()> {
    for (rel, bytes) in HEADERS {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

pub fn find(name: &str) -> Option<&'static BuiltinGadget> {
    BUILTINS.iter().find(|g| g.name == name)
}

/// The reference a built-in gadget is stored under (`<default repository>/<name>:latest`).
pub fn reference_of(gadget: &BuiltinGadget) -> Result<Reference, OciError> {
    Reference::parse(gadget.name)
}

/// Stores a built-in gadget under its default reference.
pub fn seed(store: &Store, gadget: &BuiltinGadget) -> Result<Reference, OciError> {
    let reference = reference_of(gadget)?;
    let meta = crate::gadget::Metadata::parse(gadget.metadata).unwrap_or_default();
    let parts = ImageParts {
        metadata_yaml: gadget.metadata,
        name: gadget.name,
        description: &meta.description,
        url: &meta.homepage_url,
        documentation: &meta.documentation_url,
        source: &meta.source_url,
        // Embedded images are reproducible: their date is the epoch unless SOURCE_DATE_EPOCH says.
        created: match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(_) => image::created_now(),
            Err(_) => "1970-01-01T00:00:00Z".into(),
        },
        objects: gadget.objects.to_vec(),
        extra_annotations: vec![(ANNOTATION_BUILTIN, "true")],
    };
    image::write_image(store, &reference, &parts)?;
    Ok(reference)
}

/// Marks images seeded from the binary, so a newer `ig` may replace them (and never replaces
/// an image the user put under the same reference).
pub const ANNOTATION_BUILTIN: &str = "dev.ig.builtin";

fn stored_builtin_is_current(store: &Store, reference: &Reference) -> Result<bool, OciError> {
    let Some(desc) = store.resolve(&reference.to_string())? else {
        return Ok(false);
    };
    let bytes = store.blob(&desc.digest)?;
    let index: crate::oci::types::Index =
        serde_json::from_slice(&bytes).map_err(|e| OciError::Invalid {
            reference: reference.to_string(),
            reason: e.to_string(),
        })?;
    if index
        .annotations
        .get(ANNOTATION_BUILTIN)
        .map(String::as_str)
        != Some("true")
    {
        return Ok(true); // the user's image: keep it
    }
    // Current when the stored image is made of this binary's objects. Their blobs being in the
    // store is not enough: another `ig` (an older one, or a debug build beside a release one)
    // may have seeded the reference since, and blobs stay.
    Ok(embedded_digest(store, reference)?.is_some())
}

/// Seeds `reference` if it names a built-in gadget under the default repository and the store
/// lacks it. Returns whether it did.
pub fn seed_if_builtin(store: &Store, reference: &Reference) -> Result<bool, OciError> {
    let Some(gadget) = find(reference.short_name()) else {
        return Ok(false);
    };
    if reference_of(gadget)? != *reference || stored_builtin_is_current(store, reference)? {
        return Ok(false);
    }
    seed(store, gadget)?;
    Ok(true)
}

/// The index digest of `reference` when it is one of this binary's built-in gadgets, as
/// embedded: its config and every layer are blobs this binary carries. Such an image needs no
/// signature: it is the binary's own code.
pub fn embedded_digest(store: &Store, reference: &Reference) -> Result<Option<String>, OciError> {
    let Some(gadget) = find(reference.short_name()) else {
        return Ok(None);
    };
    if reference_of(gadget)? != *reference {
        return Ok(None);
    }
    let Some(desc) = store.resolve(&reference.to_string())? else {
        return Ok(None);
    };
    let name = reference.to_string();
    let known: Vec<String> = gadget
        .objects
        .iter()
        .map(|(_, o)| crate::oci::digest_of(o))
        .collect();
    let index: crate::oci::types::Index = match serde_json::from_slice(&store.blob(&desc.digest)?) {
        Ok(i) => i,
        Err(_) => return Ok(None),
    };
    for m in &index.manifests {
        let (_, manifest) = image::platform_manifest(
            store,
            &name,
            m,
            m.platform.as_ref().map_or("", |p| p.architecture.as_str()),
        )?;
        if manifest.config.digest != crate::oci::digest_of(gadget.metadata)
            || !manifest.layers.iter().all(|l| known.contains(&l.digest))
        {
            return Ok(None);
        }
    }
    Ok(Some(desc.digest))
}
