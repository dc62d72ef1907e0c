//! The allow-list of gadgets (`--allowed-gadgets`): checked on the reference as given, before
//! anything is pulled or loaded.
//!
//! A pattern is either exact — a reference parsed like any other (`trace_exec`,
//! `ghcr.io/x/gadget/trace_exec:v1`, `…@sha256:…`); without an explicit tag it allows every tag
//! of the repository, with a digest only that digest — or a prefix ending in `*`, matched
//! against the fully qualified `registry/repository:tag` (a prefix without `/` is taken relative
//! to the default repository, so `trace_*` allows every built-in tracer).

use super::dist_error::DistError;
use super::{default_repository, Reference};

/// Ok when `patterns` is empty or one of them allows `reference`.
pub fn check(reference: &Reference, patterns: &[String]) -> Result<(), DistError> {
    check_with(reference, patterns, &default_repository())
}

pub fn check_with(
    reference: &Reference,
    patterns: &[String],
    default_repo: &str,
) -> Result<(), DistError> {
    let patterns: Vec<&str> = patterns
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    if patterns.is_empty() || patterns.iter().any(|p| allows(p, reference, default_repo)) {
        return Ok(());
    }
    Err(DistError::NotAllowed {
        reference: reference.to_string(),
        patterns: patterns.join(", "),
    })
}

fn allows(pattern: &str, reference: &Reference, default_repo: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        let prefix = if prefix.contains('/') {
            prefix.to_string()
        } else {
            format!("{default_repo}/{prefix}")
        };
        let full = format!(
            "{}/{}:{}",
            reference.registry, reference.repository, reference.tag
        );
        return full.starts_with(&prefix);
    }
    let Ok(p) = Reference::parse_with(pattern, default_repo) else {
        return false;
    };
    if p.registry != reference.registry || p.repository != reference.repository {
        return false;
    }
    if let Some(d) = &p.digest {
        return reference.digest.as_ref() == Some(d);
    }
    let name_part = pattern.rsplit('/').next().unwrap_or(pattern);
    let explicit_tag = name_part.split('@').next().is_some_and(|n| n.contains(':'));
    !explicit_tag || p.tag == reference.tag
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(pats: &[&str], r: &str) -> bool {
        let r = Reference::parse_with(r, "ghcr.io/ig/gadget").unwrap();
        let pats: Vec<String> = pats.iter().map(|s| s.to_string()).collect();
        check_with(&r, &pats, "ghcr.io/ig/gadget").is_ok()
    }

    #[test]
    fn exact_and_prefix() {
        assert!(ok(&[], "anything"));
        assert!(ok(&["trace_exec"], "trace_exec"));
        assert!(ok(&["trace_exec"], "ghcr.io/ig/gadget/trace_exec:v2"));
        assert!(!ok(&["trace_exec:v1"], "trace_exec:v2"));
        assert!(ok(&["trace_exec:v1"], "ghcr.io/ig/gadget/trace_exec:v1"));
        assert!(!ok(&["trace_exec"], "trace_open"));
        assert!(!ok(&["trace_exec"], "evil.io/ig/gadget/trace_exec"));
        assert!(ok(&["trace_*"], "trace_open:v3"));
        assert!(!ok(&["trace_*"], "snapshot_process"));
        assert!(ok(
            &["127.0.0.1:5000/demo/*"],
            "127.0.0.1:5000/demo/trace_open:v1"
        ));
        assert!(!ok(
            &["127.0.0.1:5000/demo/*"],
            "127.0.0.1:5000/demox/trace_open:v1"
        ));
        assert!(!ok(
            &["127.0.0.1:5000/demo/*"],
            "127.0.0.1:5001/demo/trace_open"
        ));
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(ok(
            &[&format!("trace_exec@{d}")],
            &format!("trace_exec@{d}")
        ));
        assert!(!ok(&[&format!("trace_exec@{d}")], "trace_exec"));
    }

    #[test]
    fn message_names_reference_and_patterns() {
        let r = Reference::parse_with("x:1/a/b:t", "d/g").unwrap();
        let e = check_with(&r, &["trace_*".into()], "d/g")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x:1/a/b:t") && e.contains("trace_*"), "{e}");
    }
}
