//! Gadget images: references and their defaults, the local OCI-layout store, and the image
//! format shared with Inspektor Gadget.

mod error;
pub mod image;
mod reference;
pub mod store;
pub mod types;

pub use error::OciError;
pub use reference::{default_repository, Reference};
pub use store::Store;

use sha2::{Digest, Sha256};

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
