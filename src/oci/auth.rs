//! Registry credentials in Docker's `config.json` format (`{"auths": {"HOST": {"auth":
//! base64("user:password")}}}`): ig's own file first (`ig login` writes it), then Docker's
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). In each file a credential helper
//! (`credHelpers` for the registry, else `credsStore`) is asked first, then `auths`
//! (see [`super::cred_helper`]).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{Map, Value};

use super::dist_error::DistError;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Where credentials are looked up, in order.
#[derive(Debug, Clone)]
pub struct CredentialFiles {
    pub files: Vec<PathBuf>,
}

impl Default for CredentialFiles {
    fn default() -> Self {
        let mut files = vec![ig_config_path()];
        files.extend(docker_config_path());
        CredentialFiles { files }
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// ig's own credentials file: `$IG_AUTH_FILE`, else `$XDG_CONFIG_HOME/ig/config.json`, else
/// `~/.config/ig/config.json`.
pub fn ig_config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("IG_AUTH_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".config")))
        .unwrap_or_else(|| PathBuf::from("/etc"));
    base.join("ig/config.json")
}

/// Docker's file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    home().map(|h| h.join(".docker/config.json"))
}

/// The registry a key of `auths` names: scheme and path stripped, Docker Hub's aliases unified.
fn normalize(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_string(),
    }
}

fn read_json(path: &Path) -> Result<Option<Value>, DistError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(DistError::Io {
                path: path.to_path_buf(),
                error: e,
            })
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| DistError::Credentials {
            path: path.to_path_buf(),
            reason: format!("invalid JSON: {e}"),
        })
}

fn decode_entry(
    path: &Path,
    registry: &str,
    entry: &Value,
) -> Result<Option<Credentials>, DistError> {
    let bad = |reason: &str| DistError::Credentials {
        path: path.to_path_buf(),
        reason: format!("{registry}: {reason}"),
    };
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let raw = B64
            .decode(auth.trim())
            .map_err(|_| bad("`auth` is not base64"))?;
        let text = String::from_utf8(raw).map_err(|_| bad("`auth` is not UTF-8"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| bad("`auth` is not user:password"))?;
        return Ok(Some(Credentials {
            username: user.to_string(),
            password: pass.to_string(),
        }));
    }
    let user = entry.get("username").and_then(Value::as_str);
    let pass = entry.get("password").and_then(Value::as_str);
    match (user, pass) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        })),
        _ => Ok(None),
    }
}

impl CredentialFiles {
    /// The first credentials found for `registry` (`host[:port]`).
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>, DistError> {
        let wanted = normalize(registry);
        for path in &self.files {
            let Some(doc) = read_json(path)? else {
                continue;
            };
            if let Some(c) = from_helper(path, &doc, &wanted)? {
                return Ok(Some(c));
            }
            let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
                continue;
            };
            for (key, entry) in auths {
                if normalize(key) == wanted {
                    if let Some(c) = decode_entry(path, registry, entry)? {
                        return Ok(Some(c));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// What the credential helper `doc` names for `registry` (normalized) answers, if any.
fn from_helper(path: &Path, doc: &Value, registry: &str) -> Result<Option<Credentials>, DistError> {
    use super::cred_helper;
    let Some((helper, key)) = cred_helper::helper_for(doc, registry, normalize) else {
        return Ok(None);
    };
    let server = cred_helper::server_url(registry);
    cred_helper::get(&helper, key, &server, cred_helper::HELPER_TIMEOUT).map_err(|e| {
        DistError::Credentials {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })
}

/// Writes the credentials file (mode 0600) by [`crate::fsutil`]'s rules: replaced atomically,
/// a symbolic link followed (a config kept in a dotfiles repository stays linked).
fn write_private(path: &Path, doc: &Value) -> Result<(), DistError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(DistError::io(dir))?;
    let mut bytes = serde_json::to_vec_pretty(doc).map_err(|e| DistError::Credentials {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');
    crate::fsutil::write(path, &bytes, crate::fsutil::Mode::Fixed(0o600))?;
    Ok(())
}

/// Records credentials for `registry` in `path` (created with mode 0600), keeping other entries.
pub fn save(path: &Path, registry: &str, creds: &Credentials) -> Result<(), DistError> {
    let mut doc = read_json(path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let not_object = || DistError::Credentials {
        path: path.to_path_buf(),
        reason: "not a JSON object".into(),
    };
    let root = doc.as_object_mut().ok_or_else(not_object)?;
    let auths = root
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let auths = auths.as_object_mut().ok_or_else(not_object)?;
    let encoded = B64.encode(format!("{}:{}", creds.username, creds.password));
    auths.retain(|k, _| normalize(k) != normalize(registry));
    auths.insert(registry.to_string(), serde_json::json!({ "auth": encoded }));
    write_private(path, &doc)
}

/// Forgets the credentials for `registry` in `path`; returns whether there were any.
pub fn remove(path: &Path, registry: &str) -> Result<bool, DistError> {
    let Some(mut doc) = read_json(path)? else {
        return Ok(false);
    };
    let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let before = auths.len();
    auths.retain(|k, _| normalize(k) != normalize(registry));
    if auths.len() == before {
        return Ok(false);
    }
    write_private(path, &doc)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_lookup_remove() {
        let dir = tempfile::tempdir().unwrap();
        let ig = dir.path().join("ig/config.json");
        let docker = dir.path().join("docker.json");
        fs::write(&docker, r#"{"auths":{"https://index.docker.io/v1/":{"auth":"ZDpw"},"other:5000":{"username":"u","password":"p"}}}"#).unwrap();
        let files = CredentialFiles {
            files: vec![ig.clone(), docker],
        };
        assert_eq!(files.lookup("docker.io").unwrap().unwrap().username, "d");
        assert_eq!(files.lookup("other:5000").unwrap().unwrap().password, "p");
        assert!(files.lookup("127.0.0.1:5000").unwrap().is_none());
        let creds = Credentials {
            username: "me".into(),
            password: "pa:ss".into(),
        };
        save(&ig, "other:5000", &creds).unwrap();
        assert_eq!(files.lookup("other:5000").unwrap().unwrap(), creds);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&ig).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(remove(&ig, "other:5000").unwrap());
        assert!(!remove(&ig, "other:5000").unwrap());
        assert_eq!(files.lookup("other:5000").unwrap().unwrap().username, "u");
    }
}
