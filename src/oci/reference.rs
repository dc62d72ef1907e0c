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
    part.contains('.') || part.contains(':') || part == "localhost" || part.starts_with('[')
}

/// Docker's limit on `registry/repository` (distribution/reference's `NameTotalLengthMax`).
pub const MAX_NAME_LEN: usize = 255;
/// Docker's limit on a tag: `[\w][\w.-]{0,127}`.
pub const MAX_TAG_LEN: usize = 128;

// Docker's reference grammar (github.com/distribution/reference), checked by hand: its five
// productions are a few lines each, while the crates that implement it (oci-spec, oci-client)
// bring their own defaults for bare names (`docker.io/library/…`) that ours differ from.

/// `[\w][\w.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = tag.bytes();
    tag.len() <= MAX_TAG_LEN
        && bytes.next().is_some_and(word)
        && bytes.all(|b| word(b) || b == b'.' || b == b'-')
}

/// A path component: `[a-z0-9]+` joined by the separators `.`, `_`, `__` or one or more `-`.
fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    let (mut i, n) = (0, bytes.len());
    loop {
        let start = i;
        while i < n && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == n {
            return true;
        }
        let sep = i;
        while i < n && !alnum(bytes[i]) {
            i += 1;
        }
        match &c[sep..i] {
            "." | "_" | "__" => {}
            s if s.bytes().all(|b| b == b'-') => {}
            _ => return false,
        }
    }
}

/// `host[:port]`: host is a domain name (components of letters, digits and inner `-`,
/// joined by `.`) or a bracketed IPv6 address.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("ipv6", Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    let component = |c: &str| {
        !c.is_empty()
            && !c.starts_with('-')
            && !c.ends_with('-')
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    host.split('.').all(component)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// How a reference is shown in an error: all of it, unless it is long enough to flood the
/// terminal.
fn shown(input: &str) -> String {
    const KEEP: usize = 80;
    match input.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}… ({} bytes)", &input[..at], input.len()),
        None => input.to_string(),
    }
}

impl Reference {
    /// Parses a reference; a name without `/` lives under the default repository.
    pub fn parse(input: &str) -> Result<Self, OciError> {
        Self::parse_with(input, &default_repository())
    }

    /// Parses by Docker's reference grammar and length limits.
    pub fn parse_with(input: &str, default_repo: &str) -> Result<Self, OciError> {
        let bad = |reason: String| OciError::Reference {
            reference: shown(input),
            reason,
        };
        if input.is_empty() {
            return Err(bad("empty".into()));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("digest must be sha256:<hex>".into()))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("digest must be sha256 followed by 64 hex digits".into()));
                }
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], rest[i + 1..].to_string()),
            _ => (rest, "latest".to_string()),
        };
        if tag.len() > MAX_TAG_LEN {
            return Err(bad(format!(
                "tag is {} characters long; at most {MAX_TAG_LEN} are allowed",
                tag.len()
            )));
        }
        if !valid_tag(&tag) {
            return Err(bad(
                "invalid tag: letters, digits and _ . - (not first), at most 128".into(),
            ));
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
        // The limit holds for the name as it is displayed (and parsed again), the implied
        // registry included: `a/b` is `docker.io/a/b` (found by fuzzing: a 249-character name
        // was accepted, then refused as displayed).
        let named = registry.len() + 1 + repository.len();
        if named > MAX_NAME_LEN {
            return Err(bad(format!(
                "name is {named} characters long; at most {MAX_NAME_LEN} are allowed"
            )));
        }
        if !valid_registry(&registry) {
            return Err(bad("registry must be host or host:port".into()));
        }
        if repository.is_empty() || !repository.split('/').all(valid_path_component) {
            return Err(bad(
                "repository must be lowercase letters and digits, separated by . _ __ - or /"
                    .into(),
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
            "trace_exec:.hidden",
            "trace_exec:-x",
            "a_/b",
            "_a/b",
            "a..b/c",
            "a/b-",
            "reg-.io/a",
            "[::1/a",
        ] {
            assert!(Reference::parse_with(bad, "d/g").is_err(), "{bad}");
        }
    }

    #[test]
    fn follows_dockers_grammar() {
        for good in [
            "a__b/c",
            "a---b/c.d_e",
            "localhost/x",
            "[::1]:5000/x/y:v1.0-rc_1",
            "my-reg.example:5000/team/tool:_x",
            "x@sha256:0123456789012345678901234567890123456789012345678901234567890123",
        ] {
            assert!(Reference::parse_with(good, "d/g").is_ok(), "{good}");
        }
    }

    #[test]
    fn length_limits_are_dockers() {
        let tag = "t".repeat(MAX_TAG_LEN);
        assert!(Reference::parse_with(&format!("a/b:{tag}"), "d/g").is_ok());
        let err = Reference::parse_with(&format!("a/b:{tag}x"), "d/g").unwrap_err();
        assert!(
            err.to_string().contains("tag is 129 characters long"),
            "{err}"
        );
        // registry.io/ + 243 = 255.
        let name = format!("registry.io/{}", "n".repeat(MAX_NAME_LEN - 12));
        assert!(Reference::parse_with(&name, "d/g").is_ok());
        let err = Reference::parse_with(&format!("{name}n"), "d/g").unwrap_err();
        assert!(
            err.to_string().contains("name is 256 characters long"),
            "{err}"
        );
        // A huge name is refused and not echoed whole.
        let huge = "a/".to_string() + &"x".repeat(100_000);
        let err = Reference::parse_with(&huge, "d/g").unwrap_err().to_string();
        // (docker.io/ counted: the name as displayed.)
        assert!(err.contains("name is 100012 characters long"), "{err}");
        // A name that fits only without the implied registry is refused: displayed, it would
        // not parse again.
        let name = "a/".to_string() + &"x".repeat(MAX_NAME_LEN - 4);
        let err = Reference::parse_with(&name, "d/g").unwrap_err().to_string();
        assert!(err.contains("name is 263 characters long"), "{err}");
        assert!(err.len() < 300, "{err}");
    }
}
