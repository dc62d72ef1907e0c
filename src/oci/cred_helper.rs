//! Docker credential helpers: `credHelpers` (per registry) and `credsStore` (all registries) in
//! Docker's `config.json` name a program `docker-credential-<name>` on `PATH`, run as
//! `docker-credential-<name> get` with the server URL on stdin; it answers
//! `{"ServerURL": …, "Username": …, "Secret": …}` on stdout (the protocol of
//! docker/docker-credential-helpers). A username of `<token>` means the secret is an identity
//! token, not a password. A helper that knows nothing for the server exits non-zero saying
//! `credentials not found`: that is "no credentials", not an error.
//!
//! Written here rather than taken from the `docker_credential` crate (1.4): that crate waits for
//! the helper without a deadline (a hanging helper would hang every pull), drops the reason a
//! helper cannot be started (a missing helper and a broken pipe give the same message), reads
//! the helper's output without a bound, and matches `credHelpers` keys literally (no
//! `https://`/path stripping, no Docker Hub aliases). The protocol itself is a few lines.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::auth::Credentials;

/// How long a helper may take to answer (a keychain prompt, a cloud CLI fetching a token).
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes read from a helper's stdout or stderr.
const MAX_OUTPUT: u64 = 1 << 20;
/// The username a helper answers when its secret is an identity token (Docker's convention).
pub const IDENTITY_TOKEN_USERNAME: &str = "<token>";

/// Why a helper gave no credentials.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("credential helper {program} is not on PATH (named by {key} for {server}); install it or remove it from {key}")]
    Missing {
        program: String,
        key: &'static str,
        server: String,
    },
    #[error("credential helper {program} cannot be run: {error}")]
    Spawn {
        program: String,
        #[source]
        error: std::io::Error,
    },
    #[error("credential helper {program} did not answer within {}s for {server}; killed it", secs.as_secs())]
    Timeout {
        program: String,
        server: String,
        secs: Duration,
    },
    #[error("credential helper {program} failed for {server} ({status}): {message}")]
    Failed {
        program: String,
        server: String,
        status: String,
        message: String,
    },
    #[error("credential helper {program} gave an invalid answer for {server}: {reason}")]
    Invalid {
        program: String,
        server: String,
        reason: String,
    },
}

/// The helper `doc` (a parsed `config.json`) names for `registry`: a matching `credHelpers` key
/// (compared as [`super::auth`] compares `auths` keys, by `normalize`), else `credsStore`.
/// Returns the helper's suffix and the key that named it.
pub fn helper_for(
    doc: &Value,
    registry: &str,
    normalize: impl Fn(&str) -> String,
) -> Option<(String, &'static str)> {
    let wanted = normalize(registry);
    let named = |v: &Value| {
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(helpers) = doc.get("credHelpers").and_then(Value::as_object) {
        if let Some(h) = helpers
            .iter()
            .find(|(k, _)| normalize(k) == wanted)
            .and_then(|(_, v)| named(v))
        {
            return Some((h, "credHelpers"));
        }
    }
    doc.get("credsStore")
        .and_then(named)
        .map(|h| (h, "credsStore"))
}

/// The server URL a helper is asked about: what `docker login` stored it under (Docker Hub's
/// legacy URL for `docker.io`, the `host[:port]` for any other registry).
pub fn server_url(registry: &str) -> String {
    if registry == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// Runs `docker-credential-<helper> get` for `server` (see [`server_url`]) with `timeout`.
/// `Ok(None)`: the helper has no credentials for it. `key`: the `config.json` key that named the
/// helper (`credHelpers` or `credsStore`), for the messages.
pub fn get(
    helper: &str,
    key: &'static str,
    server: &str,
    timeout: Duration,
) -> Result<Option<Credentials>, HelperError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    get_with_path(helper, key, server, timeout, &path)
}

/// [`get`] with the helper looked up in `search_path` (a `PATH` value).
fn get_with_path(
    helper: &str,
    key: &'static str,
    server: &str,
    timeout: Duration,
    search_path: &std::ffi::OsStr,
) -> Result<Option<Credentials>, HelperError> {
    let program = format!("docker-credential-{helper}");
    let path = find_on_path(&program, search_path).ok_or_else(|| HelperError::Missing {
        program: program.clone(),
        key,
        server: server.to_string(),
    })?;
    let spawn_err = |error| HelperError::Spawn {
        program: program.clone(),
        error,
    };
    let spawn = || {
        Command::new(&path)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    // ETXTBSY: a helper just written (a test, an installer) may still be open for writing in a
    // process forked meanwhile; it passes within moments.
    let mut child = spawn();
    for _ in 0..20 {
        match &child {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                thread::sleep(Duration::from_millis(50));
                child = spawn();
            }
            _ => break,
        }
    }
    let mut child = child.map_err(spawn_err)?;
    // Readers on their own threads, so a helper filling a pipe never blocks on us.
    // What they read comes back on a channel, waited for until the deadline only: a process the
    // helper left behind may hold the pipes open after the helper exits.
    let reader = |r: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut out = Vec::new();
            let Some(mut r) = r else {
                let _ = tx.send(out);
                return;
            };
            let _ = r.by_ref().take(MAX_OUTPUT).read_to_end(&mut out);
            let _ = tx.send(out);
            // The rest is drained, not kept: a chatty helper must not block on a full pipe.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        rx
    };
    let stdout = reader(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = reader(child.stderr.take().map(|s| Box::new(s) as _));
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its stdin is judged by its exit status below.
        let _ = stdin.write_all(server.as_bytes());
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HelperError::Timeout {
                    program,
                    server: server.to_string(),
                    secs: timeout,
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(spawn_err(e)),
        }
    };
    let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        rx.recv_timeout(left).ok()
    };
    let (Some(stdout), Some(stderr)) = (collect(stdout), collect(stderr)) else {
        return Err(HelperError::Timeout {
            program,
            server: server.to_string(),
            secs: timeout,
        });
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if !status.success() {
        let (out, err) = (text(&stdout), text(&stderr));
        // docker-credential-helpers' ErrCredentialsNotFound ("credentials not found in native
        // keychain"), on stdout.
        if out.contains("credentials not found") || err.contains("credentials not found") {
            return Ok(None);
        }
        let message = [err, out]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(HelperError::Failed {
            program,
            server: server.to_string(),
            status: status.to_string(),
            message: if message.is_empty() {
                "no message".into()
            } else {
                message
            },
        });
    }
    parse_answer(&stdout).map_err(|reason| HelperError::Invalid {
        program,
        server: server.to_string(),
        reason,
    })
}

/// A helper's answer: `Username` and `Secret` (an empty secret means none).
fn parse_answer(stdout: &[u8]) -> Result<Option<Credentials>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: Answer =
        serde_json::from_slice(stdout).map_err(|e| format!("not the JSON of a credential: {e}"))?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: answer.username,
        password: answer.secret,
    }))
}

/// `program` in a directory of `search_path`, as an executable file. A helper name is a plain
/// suffix: one with a `/` is not looked up (it would name another file).
fn find_on_path(program: &str, search_path: &std::ffi::OsStr) -> Option<PathBuf> {
    if program.contains('/') {
        return None;
    }
    std::env::split_paths(search_path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        s.trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn helper_choice() {
        let doc = serde_json::json!({
            "credsStore": "desktop",
            "credHelpers": {"https://reg.example:5000/v2/": "ecr", "empty.example": ""}
        });
        assert_eq!(
            helper_for(&doc, "reg.example:5000", norm),
            Some(("ecr".into(), "credHelpers"))
        );
        assert_eq!(
            helper_for(&doc, "other.example", norm),
            Some(("desktop".into(), "credsStore"))
        );
        assert_eq!(
            helper_for(&doc, "empty.example", norm),
            Some(("desktop".into(), "credsStore"))
        );
        assert_eq!(
            helper_for(&serde_json::json!({"auths": {}}), "x", norm),
            None
        );
        assert_eq!(server_url("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(server_url("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn answers() {
        let c = parse_answer(br#"{"ServerURL":"x","Username":"u","Secret":"s"}"#)
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "s"));
        let t = parse_answer(br#"{"Username":"<token>","Secret":"tok"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(t.username, IDENTITY_TOKEN_USERNAME);
        assert!(parse_answer(br#"{"Username":"u","Secret":""}"#)
            .unwrap()
            .is_none());
        assert!(parse_answer(b"not json").is_err());
        assert!(parse_answer(br#"{"Username":"u"}"#).is_err());
    }

    /// A real helper process on a private PATH: timeout, failure, "not found", missing.
    #[test]
    fn bounded_helper_runs() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.path().join(format!("docker-credential-{name}"));
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write("slow", "exec sleep 30");
        // Answers, exits, but leaves a process holding its stdout open.
        write(
            "lingering",
            r#"echo '{"Username":"u","Secret":"s"}'; sleep 3 & exit 0"#,
        );
        write(
            "none",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        // The server URL comes on stdin without a newline: `read` returns non-zero but fills s.
        write(
            "ok",
            r#"read s; echo "{\"Username\":\"u-$s\",\"Secret\":\"p\"}""#,
        );
        // Tests share the process environment: an explicit PATH instead of changing it.
        let path = dir.path().as_os_str();
        let get = |h: &str, key, timeout| get_with_path(h, key, "h:1", timeout, path);
        let t0 = Instant::now();
        let e = get("slow", "credsStore", Duration::from_millis(300)).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(
            e.to_string()
                .contains("docker-credential-slow did not answer within"),
            "{e}"
        );
        let t0 = Instant::now();
        let e = get("lingering", "credsStore", Duration::from_millis(500)).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(e.to_string().contains("did not answer within"), "{e}");
        assert!(get("none", "credsStore", HELPER_TIMEOUT).unwrap().is_none());
        let c = get("ok", "credHelpers", HELPER_TIMEOUT).unwrap().unwrap();
        assert_eq!(c.username, "u-h:1");
        let e = get("../ok", "credHelpers", HELPER_TIMEOUT).unwrap_err();
        assert!(e.to_string().contains("not on PATH"), "{e}");
        let e = get("absent-ig-test", "credHelpers", HELPER_TIMEOUT).unwrap_err();
        assert!(
            e.to_string().contains(
                "docker-credential-absent-ig-test is not on PATH (named by credHelpers for h:1)"
            ),
            "{e}"
        );
    }
}
