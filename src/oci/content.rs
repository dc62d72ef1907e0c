//! The one check of content against the descriptor that names it, shared by every way content
//! enters the store (`ig image pull`, `ig image import`): exactly the declared size, and the
//! declared digest. A descriptor claiming 10 bytes, or 2^63, for a blob that has 5,000 is
//! refused, so no wrong size is stored and handed on by a later export or push.

use super::digest_of;
use super::types::Descriptor;

/// How content differs from its descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("is declared as {declared} bytes but has {actual}")]
    Size { declared: u64, actual: u64 },
    #[error("does not match its digest: content hashes to {actual}")]
    Digest { actual: String },
}

/// Checks `bytes` against `desc`: size first (cheap, and what a lying descriptor gets wrong),
/// then digest.
pub fn check(desc: &Descriptor, bytes: &[u8]) -> Result<(), Mismatch> {
    let actual = bytes.len() as u64;
    if desc.size != actual {
        return Err(Mismatch::Size {
            declared: desc.size,
            actual,
        });
    }
    let digest = digest_of(bytes);
    if digest != desc.digest {
        return Err(Mismatch::Digest { actual: digest });
    }
    Ok(())
}

/// Whether `digest` has the only form the store accepts: `sha256:` and 64 hex digits.
pub fn is_sha256(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::types::MEDIA_EBPF;

    #[test]
    fn declared_sizes_must_be_exact() {
        let bytes = b"0123456789abcdef";
        let mut desc = Descriptor::new(MEDIA_EBPF, bytes);
        assert_eq!(check(&desc, bytes), Ok(()));
        for lie in [10, 1 << 63, 1_000_000_000_000_000_000, 0] {
            desc.size = lie;
            assert_eq!(
                check(&desc, bytes),
                Err(Mismatch::Size {
                    declared: lie,
                    actual: 16
                })
            );
        }
    }

    #[test]
    fn digest_must_match() {
        let desc = Descriptor::new(MEDIA_EBPF, b"aaaa");
        let err = check(&desc, b"bbbb").unwrap_err();
        assert!(matches!(err, Mismatch::Digest { .. }), "{err}");
        assert!(is_sha256(&desc.digest));
        assert!(!is_sha256("sha256:../../etc/passwd"));
        assert!(!is_sha256("sha512:00"));
    }
}
