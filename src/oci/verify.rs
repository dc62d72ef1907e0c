//! Verifying an image in the local store against trusted public keys before it is loaded.
//!
//! The chain: the signature payload names the index digest; the index digest is the tag's
//! descriptor in the store, and every blob below it is re-hashed when read (`Store::blob`), so a
//! valid signature covers every byte `ig run` loads.

use std::path::PathBuf;

use super::dist_error::DistError;
use super::sign::{
    signature_reference, PublicKey, ANNOTATION_SIGNATURE, MEDIA_SIMPLESIGNING, PAYLOAD_TYPE,
};
use super::store::Store;
use super::types::Manifest;
use super::{OciError, Reference};

/// A successful verification.
#[derive(Debug, Clone)]
pub struct Verified {
    pub reference: String,
    pub digest: String,
    /// Label of the key that verified.
    pub key: String,
}

/// Files of trusted keys read when no `--public-key` is given: `$IG_PUBLIC_KEYS` (a
/// colon-separated list), else `/etc/ig/public-keys.pem` and `~/.config/ig/public-keys.pem`.
/// Each may hold several PEM `PUBLIC KEY` blocks.
pub fn default_key_files() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("IG_PUBLIC_KEYS").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&list).collect();
    }
    let mut files = vec![PathBuf::from("/etc/ig/public-keys.pem")];
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        });
    if let Some(c) = config {
        files.push(c.join("ig/public-keys.pem"));
    }
    files
}

/// Loads keys from `paths`; with none given, from the default key files that exist.
pub fn load_public_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>, DistError> {
    let mut keys = Vec::new();
    if paths.is_empty() {
        for p in default_key_files() {
            if p.exists() {
                keys.extend(PublicKey::load(&p)?);
            }
        }
    } else {
        for p in paths {
            keys.extend(PublicKey::load(p)?);
        }
    }
    Ok(keys)
}

fn labels(keys: &[PublicKey]) -> String {
    keys.iter()
        .map(|k| k.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn config_hint() -> String {
    default_key_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Verifies that the image `reference` names in the local store carries a cosign signature by
/// one of `keys` over its index digest. Unsigned images, signatures by other keys, and
/// signatures of another digest are refused.
pub fn verify(
    store: &Store,
    reference: &Reference,
    keys: &[PublicKey],
) -> Result<Verified, DistError> {
    let name = reference.to_string();
    if keys.is_empty() {
        return Err(DistError::NoKeys {
            reference: name,
            config: config_hint(),
        });
    }
    let _lock = store.lock_shared()?;
    let desc = store
        .resolve(&name)?
        .ok_or_else(|| OciError::NotFound(name.clone()))?;
    if let Some(pinned) = &reference.digest {
        if *pinned != desc.digest {
            return Err(DistError::BadSignature {
                reference: name,
                digest: desc.digest,
                keys: labels(keys),
                reason: format!("the reference pins {pinned}"),
            });
        }
    }
    let sig_ref = signature_reference(reference, &desc.digest);
    let sig_name = sig_ref.to_string();
    let Some(sig_desc) = store.resolve(&sig_name)? else {
        return Err(DistError::Unsigned {
            reference: name,
            digest: desc.digest,
            signature: sig_name,
            keys: labels(keys),
        });
    };
    let manifest: Manifest =
        serde_json::from_slice(&store.blob(&sig_desc.digest)?).map_err(|e| OciError::Invalid {
            reference: sig_name.clone(),
            reason: format!("not an OCI manifest: {e}"),
        })?;
    let mut reasons = Vec::new();
    for layer in &manifest.layers {
        if layer.media_type != MEDIA_SIMPLESIGNING {
            continue;
        }
        let Some(signature) = layer.annotations.get(ANNOTATION_SIGNATURE) else {
            reasons.push(format!(
                "layer {} has no signature annotation",
                layer.digest
            ));
            continue;
        };
        let payload = match store.blob(&layer.digest) {
            Ok(p) => p,
            Err(e) => {
                reasons.push(e.to_string());
                continue;
            }
        };
        let Some(key) = keys.iter().find(|k| k.verifies(&payload, signature)) else {
            reasons.push(format!(
                "signature in {} is not by any of these keys",
                layer.digest
            ));
            continue;
        };
        match check_payload(&payload, &desc.digest) {
            Ok(()) => {
                return Ok(Verified {
                    reference: name,
                    digest: desc.digest,
                    key: key.label.clone(),
                });
            }
            Err(why) => reasons.push(format!("signature by {} {why}", key.label)),
        }
    }
    if reasons.is_empty() {
        reasons.push(format!("{sig_name} holds no cosign signature"));
    }
    Err(DistError::BadSignature {
        reference: name,
        digest: desc.digest,
        keys: labels(keys),
        reason: reasons.join("; "),
    })
}

/// The payload must be a cosign simple-signing document naming `digest`.
fn check_payload(payload: &[u8], digest: &str) -> Result<(), String> {
    let doc: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("has an invalid payload: {e}"))?;
    let critical = &doc["critical"];
    if critical["type"].as_str() != Some(PAYLOAD_TYPE) {
        return Err(format!(
            "has payload type {}, not {PAYLOAD_TYPE:?}",
            critical["type"]
        ));
    }
    match critical["image"]["docker-manifest-digest"].as_str() {
        Some(d) if d == digest => Ok(()),
        Some(d) => Err(format!("is for digest {d}")),
        None => Err("names no image digest".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::sign::{payload, PrivateKey};

    #[test]
    fn payload_must_name_the_digest() {
        let r = Reference::parse_with("r:1/a/b", "d/g").unwrap();
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        assert!(check_payload(&payload(&r, &d1), &d1).is_ok());
        assert!(check_payload(&payload(&r, &d1), &d2).is_err());
        assert!(check_payload(b"{}", &d1).is_err());
    }

    #[test]
    fn verify_in_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let r = Reference::parse_with("r:1/a/b:v1", "d/g").unwrap();
        let parts = crate::oci::image::ImageParts {
            metadata_yaml: b"name: b\n",
            name: "b",
            description: "",
            url: "",
            documentation: "",
            source: "",
            created: "2024-01-01T00:00:00Z".into(),
            objects: vec![("amd64", b"\x7fELF")],
            extra_annotations: Vec::new(),
        };
        crate::oci::image::write_image(&store, &r, &parts).unwrap();
        let a = PrivateKey::generate();
        let b = PrivateKey::generate();
        let (pa, pb) = (a.public_key("a.pub"), b.public_key("b.pub"));
        assert!(matches!(
            verify(&store, &r, std::slice::from_ref(&pa)),
            Err(DistError::Unsigned { .. })
        ));
        assert!(matches!(
            verify(&store, &r, &[]),
            Err(DistError::NoKeys { .. })
        ));
        crate::oci::sign::sign(&store, &r, &a).unwrap();
        assert_eq!(
            verify(&store, &r, &[pb.clone(), pa.clone()]).unwrap().key,
            "a.pub"
        );
        let err = verify(&store, &r, std::slice::from_ref(&pb)).unwrap_err();
        assert!(matches!(err, DistError::BadSignature { .. }), "{err}");
        assert!(err.to_string().contains("b.pub"), "{err}");
        // A second signature by b is appended; both keys now verify.
        assert!(crate::oci::sign::sign(&store, &r, &b).unwrap().added);
        assert!(!crate::oci::sign::sign(&store, &r, &b).unwrap().added);
        assert!(verify(&store, &r, &[pb]).is_ok());
        assert!(verify(&store, &r, &[pa]).is_ok());
    }
}
