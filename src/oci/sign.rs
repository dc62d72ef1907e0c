//! Cosign-compatible signatures (ECDSA P-256 over SHA-256, "simple signing" payloads).
//!
//! The signature of an image whose index has digest `sha256:<hex>` is an OCI manifest tagged
//! `sha256-<hex>.sig` in the image's repository — locally as `<registry>/<repo>:sha256-<hex>.sig`,
//! so it travels with push, pull, export and import. Each layer is one signature: the payload
//! blob (`application/vnd.dev.cosign.simplesigning.v1+json`) with the base64 DER signature in
//! the annotation `dev.cosignproject.cosign/signature`, as `cosign sign --key` writes it.
//!
//! Keys: private keys are PKCS#8 (`PRIVATE KEY`, written by `ig image keygen`) or SEC1
//! (`EC PRIVATE KEY`) PEM; cosign's encrypted `ENCRYPTED SIGSTORE PRIVATE KEY` format is not
//! read (sign with cosign itself then: `ig` verifies its signatures with `cosign.pub`).
//! Public keys are SPKI PEM (`PUBLIC KEY`), as `cosign generate-key-pair` writes `cosign.pub`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};

use super::dist_error::DistError;
use super::store::Store;
use super::types::{Descriptor, Manifest, MEDIA_MANIFEST};
use super::{OciError, Reference};

pub const MEDIA_SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// A public key that signatures are checked against; `label` names it in messages.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub label: String,
    key: VerifyingKey,
}

pub struct PrivateKey {
    key: SigningKey,
}

fn pem_blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(end_label) = after.find("-----") else {
            break;
        };
        let label = after[..end_label].to_string();
        let end_marker = format!("-----END {label}-----");
        let Some(end) = after.find(&end_marker) else {
            break;
        };
        let block_end = start + 11 + end + end_marker.len();
        out.push((label, rest[start..block_end].to_string()));
        rest = &rest[block_end..];
    }
    out
}

impl PublicKey {
    /// Every `PUBLIC KEY` block of a PEM text (one key file may hold several).
    pub fn parse_pem(label: &str, text: &str) -> Result<Vec<PublicKey>, DistError> {
        let bad = |reason: String| DistError::Key {
            path: label.to_string(),
            reason,
        };
        let blocks: Vec<_> = pem_blocks(text)
            .into_iter()
            .filter(|(l, _)| l == "PUBLIC KEY")
            .collect();
        if blocks.is_empty() {
            return Err(bad(
                "no PEM `PUBLIC KEY` block (expected an ECDSA P-256 key as cosign writes it)"
                    .into(),
            ));
        }
        let many = blocks.len() > 1;
        blocks
            .iter()
            .enumerate()
            .map(|(i, (_, pem))| {
                let key = VerifyingKey::from_public_key_pem(pem)
                    .map_err(|e| bad(format!("not an ECDSA P-256 public key: {e}")))?;
                let label = if many {
                    format!("{label}#{}", i + 1)
                } else {
                    label.to_string()
                };
                Ok(PublicKey { label, key })
            })
            .collect()
    }

    pub fn load(path: &Path) -> Result<Vec<PublicKey>, DistError> {
        let text = std::fs::read_to_string(path).map_err(DistError::io(path))?;
        Self::parse_pem(&path.display().to_string(), &text)
    }

    pub fn to_pem(&self) -> Result<String, DistError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| DistError::Key {
                path: self.label.clone(),
                reason: e.to_string(),
            })
    }

    /// Whether `signature` (base64 of DER, or of raw r‖s) signs `payload`.
    pub fn verifies(&self, payload: &[u8], signature_b64: &str) -> bool {
        let Ok(raw) = B64.decode(signature_b64.trim()) else {
            return false;
        };
        let sig = Signature::from_der(&raw).or_else(|_| Signature::from_slice(&raw));
        sig.is_ok_and(|s| self.key.verify(payload, &s).is_ok())
    }
}

impl PrivateKey {
    pub fn generate() -> PrivateKey {
        PrivateKey {
            key: SigningKey::random(&mut rand_core::OsRng),
        }
    }

    pub fn parse_pem(label: &str, text: &str) -> Result<PrivateKey, DistError> {
        let bad = |reason: String| DistError::Key {
            path: label.to_string(),
            reason,
        };
        for (kind, pem) in pem_blocks(text) {
            match kind.as_str() {
                "PRIVATE KEY" => {
                    return SigningKey::from_pkcs8_pem(&pem)
                        .map(|key| PrivateKey { key })
                        .map_err(|e| bad(format!("not an ECDSA P-256 PKCS#8 key: {e}")))
                }
                "EC PRIVATE KEY" => {
                    return p256::SecretKey::from_sec1_pem(&pem)
                        .map(|k| PrivateKey {
                            key: SigningKey::from(k),
                        })
                        .map_err(|e| bad(format!("not an ECDSA P-256 SEC1 key: {e}")))
                }
                "ENCRYPTED SIGSTORE PRIVATE KEY"
                | "ENCRYPTED COSIGN PRIVATE KEY"
                | "ENCRYPTED PRIVATE KEY" => {
                    return Err(bad(format!(
                    "encrypted keys ({kind}) are not supported; use a key from `ig image keygen`"
                )))
                }
                _ => {}
            }
        }
        Err(bad("no PEM `PRIVATE KEY` block".into()))
    }

    pub fn load(path: &Path) -> Result<PrivateKey, DistError> {
        let text = std::fs::read_to_string(path).map_err(DistError::io(path))?;
        Self::parse_pem(&path.display().to_string(), &text)
    }

    /// PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, DistError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|s| s.to_string())
            .map_err(|e| DistError::Key {
                path: "new key".into(),
                reason: e.to_string(),
            })
    }

    pub fn public_key(&self, label: &str) -> PublicKey {
        PublicKey {
            label: label.to_string(),
            key: *self.key.verifying_key(),
        }
    }

    /// base64 of the DER ECDSA signature over `payload`.
    pub fn sign(&self, payload: &[u8]) -> String {
        let sig: Signature = self.key.sign(payload);
        B64.encode(sig.to_der().as_bytes())
    }
}

/// The cosign "simple signing" payload for an image.
pub fn payload(reference: &Reference, digest: &str) -> Vec<u8> {
    let doc = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": reference.name()},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// The local tag holding the signatures of `digest` in `reference`'s repository.
pub fn signature_reference(reference: &Reference, digest: &str) -> Reference {
    Reference {
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        tag: signature_tag(digest),
        digest: None,
    }
}

/// `sha256:<hex>` → `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

pub fn is_signature_tag(tag: &str) -> bool {
    tag.starts_with("sha256-") && tag.ends_with(".sig")
}

/// Cosign's config blob for a signature manifest (a tiny image config listing the payloads).
fn signature_config(layers: &[Descriptor]) -> Vec<u8> {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let doc = serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn parse_manifest(store: &Store, what: &str, digest: &str) -> Result<Manifest, DistError> {
    let bytes = store.blob(digest)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        DistError::Store(OciError::Invalid {
            reference: what.to_string(),
            reason: format!("{digest}: {e}"),
        })
    })
}

/// What `sign` did.
#[derive(Debug, Clone)]
pub struct Signed {
    pub digest: String,
    pub signature_reference: Reference,
    pub added: bool,
}

/// Signs the image `reference` points at in the local store; an existing signature manifest
/// gets one more layer (signing twice with the same key changes nothing).
pub fn sign(store: &Store, reference: &Reference, key: &PrivateKey) -> Result<Signed, DistError> {
    let name = reference.to_string();
    let _lock = store.lock()?;
    let desc = store
        .resolve(&name)?
        .ok_or_else(|| OciError::NotFound(name.clone()))?;
    // Check the image is intact before vouching for it.
    let mut all = std::collections::BTreeSet::new();
    super::image::reachable(store, &desc, &mut all);
    for d in &all {
        store.blob(d)?;
    }
    let sig_ref = signature_reference(reference, &desc.digest);
    let sig_name = sig_ref.to_string();
    let payload = payload(reference, &desc.digest);
    let signature = key.sign(&payload);
    let mut layers = match store.resolve(&sig_name)? {
        Some(existing) => parse_manifest(store, &sig_name, &existing.digest)?.layers,
        None => Vec::new(),
    };
    let already = layers.iter().any(|l| {
        l.annotations.get(ANNOTATION_SIGNATURE) == Some(&signature)
            && l.digest == super::digest_of(&payload)
    });
    if !already {
        store.put_blob(&payload)?;
        let mut layer = Descriptor::new(MEDIA_SIMPLESIGNING, &payload);
        layer
            .annotations
            .insert(ANNOTATION_SIGNATURE.into(), signature);
        layers.push(layer);
        let config_bytes = signature_config(&layers);
        store.put_blob(&config_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(MEDIA_OCI_CONFIG, &config_bytes),
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
        store.put_blob(&bytes)?;
        store.set_tag(&sig_name, Descriptor::new(MEDIA_MANIFEST, &bytes))?;
    }
    Ok(Signed {
        digest: desc.digest,
        signature_reference: sig_ref,
        added: !already,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_cosign_simple_signing() {
        let r = Reference::parse_with("127.0.0.1:5000/demo/trace_open:v1", "d/g").unwrap();
        let d = format!("sha256:{}", "ab".repeat(32));
        let p = String::from_utf8(payload(&r, &d)).unwrap();
        assert_eq!(
            p,
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/demo/trace_open"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "ab".repeat(32)));
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let key = PrivateKey::generate();
        let pem = key.to_pem().unwrap();
        let again = PrivateKey::parse_pem("k", &pem).unwrap();
        let public = again.public_key("k.pub");
        let pub_pem = public.to_pem().unwrap();
        assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let keys = PublicKey::parse_pem("k.pub", &format!("{pub_pem}\n{pub_pem}")).unwrap();
        assert_eq!(keys.len(), 2);
        let sig = key.sign(b"payload");
        assert!(keys[0].verifies(b"payload", &sig));
        assert!(!keys[0].verifies(b"payloaD", &sig));
        let other = PrivateKey::generate().public_key("other");
        assert!(!other.verifies(b"payload", &sig));
        assert!(!other.verifies(b"payload", "not base64!"));
    }
}
