//! Image references: `trace_exec`, `registry:5000/repo/name:tag`, `name@sha256:...`, with the
//! defaults a bare name gets.

use std::fmt;

use super::OciError;

/// Where bare gadget names live, unless `IG_DEFAULT_REPOSITORY` says otherwise.
pub const DEFAULT_REPOSITORY: &str = "ghcr.io/ig-rs/gadget";
const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
}

pub fn default_repository() -> String {
    std::env::var("IG_DEFAULT_REPOSITORY")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_REPOSITORY.to_string())
}

fn looks_like_registry(part: &str) -> bool {
    part.contains('.') || part.contains(':') || part == "localhost"
}

impl Reference {
    /// Parses a reference; a name without `/` lives under the default repository.
    pub fn parse(input: &str) -> Result<Self, OciError> {
        Self::parse_with(input, &default_repository())
    }

    pub fn parse_with(input: &str, default_repo: &str) -> Result<Self, OciError> {
        let bad = |reason: &str| OciError::Reference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("digest must be sha256:<hex>"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("digest must be sha256 followed by 64 hex digits"));
                }
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], rest[i + 1..].to_string()),
            _ => (rest, "latest".to_string()),
        };
        if tag.is_empty()
            || tag.len() > 128
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(bad("invalid tag"));
        }
        let full = if !name.contains('/') {
            format!("{default_repo}/{name}")
        } else {
            name.to_string()
        };
        let (registry, repository) = match full.split_once('/') {
            Some((first, rest)) if looks_like_registry(first) => {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), full.clone()),
        };
        let port_ok = match registry.split_once(':') {
            Some((host, port)) => {
                !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            }
            None => true,
        };
        if !port_ok {
            return Err(bad("registry must be host or host:port"));
        }
        let valid = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-/".contains(&c);
        if repository.is_empty()
            || !repository.bytes().all(valid)
            || repository.starts_with('/')
            || repository.ends_with('/')
            || repository.contains("//")
        {
            return Err(bad(
                "repository must be lowercase letters, digits and . _ - /",
            ));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short gadget name (last path component).
    pub fn short_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)?;
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_name_gets_defaults() {
        let r = Reference::parse_with("trace_exec", "ghcr.io/x/gadget").unwrap();
        assert_eq!(r.to_string(), "ghcr.io/x/gadget/trace_exec:latest");
        assert_eq!(r.short_name(), "trace_exec");
    }

    #[test]
    fn registry_with_port_and_tag() {
        let r = Reference::parse_with("127.0.0.1:5000/demo/trace_exec:v1", "d/g").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "demo/trace_exec");
        assert_eq!(r.tag, "v1");
        let r = Reference::parse_with("localhost:5000/a", "d/g").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.tag, "latest");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER",
            "a:b:c/d",
            "x@sha256:12",
            "a//b/c",
            "trace_exec:bad tag",
        ] {
            assert!(Reference::parse_with(bad, "d/g").is_err(), "{bad}");
        }
    }
}
