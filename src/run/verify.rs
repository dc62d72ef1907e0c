use crate::oci::dist_error::DistError;
use crate::oci::sign::PublicKey;
use crate::oci::{Reference, Store};

/// The index digest a run may load: the binary's own built-in gadgets are trusted as they are;
/// anything else needs a cosign signature by one of `keys` (see `oci::verify::verify`).
pub fn verified_digest(
    store: &Store,
    reference: &Reference,
    keys: &[PublicKey],
) -> Result<String, DistError> {
    if let Some(digest) = crate::builtin::embedded_digest(store, reference)? {
        return Ok(digest);
    }
    Ok(crate::oci::verify::verify(store, reference, keys)?.digest)
}
