use crate::gadget::GadgetError;
use crate::oci::OciError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Image(#[from] OciError),
    #[error(transparent)]
    Gadget(#[from] GadgetError),
    #[error("{0}")]
    Config(String),
    #[error("gadget {gadget}: {reason}")]
    Unsupported { gadget: String, reason: String },
    #[error("writing output: {0}")]
    Output(std::io::Error),
    #[error("containers: {0}")]
    Containers(String),
}
