//! The image rules of a daemon run, the same as a local `ig run`: allow-lists (the client's and
//! the daemon's), pull policy, then a signature by a trusted key unless verification is off.

use std::str::FromStr;

use super::proto;
use super::DaemonError;
use crate::gadget::spec::ParamType;
use crate::oci::registry::RegistryOptions;
use crate::oci::sign::PublicKey;
use crate::oci::transfer::{ensure_local, PullPolicy};
use crate::oci::{Reference, Store};

/// An image that passed the rules: in the store, allowed, and verified when asked.
pub struct Resolved {
    pub reference: Reference,
    /// The verified index digest; none when verification was off.
    pub verified: Option<String>,
    pub info: proto::GadgetInfo,
}

/// What the daemon itself allows, whatever its clients ask.
#[derive(Debug, Clone, Default)]
pub struct DaemonImagePolicy {
    pub allowed_gadgets: Vec<String>,
    pub insecure_registries: Vec<String>,
}

pub async fn resolve(
    store: &Store,
    opts: &proto::ImageOptions,
    policy: &DaemonImagePolicy,
    resuming: bool,
) -> Result<Resolved, DaemonError> {
    let image_err = |e: &dyn std::fmt::Display| DaemonError::Image(e.to_string());
    if opts.image.is_empty() {
        return Err(DaemonError::Invalid(
            "missing IMAGE: which gadget to run, e.g. trace_exec".into(),
        ));
    }
    let reference = Reference::parse(&opts.image).map_err(|e| image_err(&e))?;
    crate::oci::allow::check(&reference, &opts.allowed_gadgets).map_err(|e| image_err(&e))?;
    crate::oci::allow::check(&reference, &policy.allowed_gadgets)
        .map_err(|e| DaemonError::Image(format!("the daemon's --allowed-gadgets: {e}")))?;
    let mut pull = if opts.pull.is_empty() {
        PullPolicy::Missing
    } else {
        PullPolicy::from_str(&opts.pull).map_err(DaemonError::Invalid)?
    };
    // A restarted daemon resumes from its store; it does not refresh every image first.
    if resuming && pull == PullPolicy::Always {
        pull = PullPolicy::Missing;
    }
    let registry = RegistryOptions {
        insecure_registries: opts
            .insecure_registries
            .iter()
            .chain(&policy.insecure_registries)
            .cloned()
            .collect(),
        progress: false,
        ..RegistryOptions::default()
    };
    let blocking = |f: Box<dyn FnOnce() -> Result<(), DaemonError> + Send>| async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| DaemonError::Internal(e.to_string()))?
    };
    {
        let (store, reference) = (store.clone(), reference.clone());
        blocking(Box::new(move || {
            crate::builtin::seed_if_builtin(&store, &reference)
                .map(|_| ())
                .map_err(|e| DaemonError::Image(e.to_string()))
        }))
        .await?;
    }
    let local = store
        .resolve(&reference.to_string())
        .map_err(|e| image_err(&e))?
        .is_some();
    ensure_local(store, &reference, pull, &registry)
        .await
        .map_err(|e| {
            DaemonError::Image(match (local, pull) {
                (false, PullPolicy::Never) => {
                    format!("{reference} is not in the local store (--pull never)")
                }
                (false, _) => {
                    format!("{reference} is not in the local store and pulling it failed: {e}")
                }
                (true, _) => format!("pulling {reference} failed: {e}"),
            })
        })?;
    let (store, opts, reference2) = (store.clone(), opts.clone(), reference.clone());
    let (verified, info) = tokio::task::spawn_blocking(move || check(&store, &opts, &reference2))
        .await
        .map_err(|e| DaemonError::Internal(e.to_string()))??;
    Ok(Resolved {
        reference,
        verified,
        info,
    })
}

fn check(
    store: &Store,
    opts: &proto::ImageOptions,
    reference: &Reference,
) -> Result<(Option<String>, proto::GadgetInfo), DaemonError> {
    let prepared = crate::run::prepare(store, reference)
        .map_err(|e| DaemonError::Image(format!("cannot run {}: {e}", opts.image)))?;
    let verified = if opts.verify {
        let keys = if opts.public_keys_pem.is_empty() {
            crate::oci::verify::load_public_keys(&[])
        } else {
            let mut keys = Vec::new();
            for (i, pem) in opts.public_keys_pem.iter().enumerate() {
                match PublicKey::parse_pem(&format!("the client's key {}", i + 1), pem) {
                    Ok(k) => keys.extend(k),
                    Err(e) => return Err(DaemonError::Image(e.to_string())),
                }
            }
            Ok(keys)
        }
        .map_err(|e| DaemonError::Image(e.to_string()))?;
        Some(
            crate::run::verified_digest(store, reference, &keys)
                .map_err(|e| DaemonError::Image(e.to_string()))?,
        )
    } else {
        None
    };
    let spec = &prepared.spec;
    let info = proto::GadgetInfo {
        reference: reference.to_string(),
        digest: prepared.image.index_digest.clone(),
        params: spec
            .params
            .iter()
            .map(|p| proto::Param {
                key: p.key.clone(),
                description: p.description.clone(),
                r#type: match p.ty {
                    ParamType::Bool => "bool".into(),
                    ParamType::Int { .. } => "int".into(),
                    ParamType::Str { .. } => "string".into(),
                },
                default_value: p.default.clone(),
            })
            .collect(),
        flight_recorder: spec.recorder().is_some(),
        array: spec.is_array_gadget(),
    };
    Ok((verified, info))
}
