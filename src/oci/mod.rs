//! Gadget images: references and their defaults, the local OCI-layout store, and the image
//! format shared with Inspektor Gadget.

pub mod allow;
pub mod archive;
pub mod auth;
pub mod content;
pub mod cred_helper;
pub mod deadline;
pub mod dist_error;
mod error;
pub mod image;
mod reference;
pub mod registry;
pub mod sign;
pub mod store;
pub mod transfer;
pub mod types;
pub mod verify;

pub use error::OciError;
pub use reference::{default_repository, Reference};
pub use store::Store;

use sha2::{Digest, Sha256};

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
