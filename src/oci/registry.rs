//! A small client for the OCI distribution API (`/v2/…`) over reqwest with rustls: what pushing
//! and pulling gadget images needs — manifests and indexes byte for byte (their digests must
//! not change), blobs checked against their digests, Basic and Bearer-token authentication.
//!
//! Hand-written rather than `oci-client`: that crate re-serializes manifests through its own
//! types (dropping fields like `artifactType` would change digests and break signatures) and
//! has no first-class image-index push; the API surface we need is six requests.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use super::auth::{basic_header, Challenge, CredentialFiles, Credentials};
use super::dist_error::DistError;
use super::types::{MEDIA_INDEX, MEDIA_MANIFEST};
use super::{digest_of, Reference};

/// Largest manifest or index accepted from a registry.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest blob accepted from a registry (gadget objects are kilobytes to a few megabytes).
pub const MAX_BLOB: u64 = 512 << 20;

const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `HOST[:PORT]` of registries spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// Where credentials come from.
    pub credentials: CredentialFiles,
}

impl RegistryOptions {
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure_registries
            .iter()
            .any(|r| r.trim() == registry)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

/// A connection to one repository of one registry.
pub struct Registry {
    http: reqwest::Client,
    registry: String,
    base: String,
    repository: String,
    scope: String,
    creds: Option<Credentials>,
    authorization: Mutex<Option<String>>,
    insecure: bool,
}

/// A manifest or index as the registry returned it.
pub struct RawManifest {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// The registry's error text (`{"errors":[{"code":..,"message":..}]}`), prefixed with ": ".
async fn error_detail(resp: Response) -> String {
    let Ok(body) = resp.bytes().await else {
        return String::new();
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let msgs: Vec<String> = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.as_array())
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code} {msg}").trim().to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    if !msgs.is_empty() {
        return format!(": {}", msgs.join("; "));
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() || text.len() > 300 {
        String::new()
    } else {
        format!(": {text}")
    }
}

impl Registry {
    pub fn connect(
        reference: &Reference,
        access: Access,
        opts: &RegistryOptions,
    ) -> Result<Self, DistError> {
        let registry = reference.registry.clone();
        let insecure = opts.is_insecure(&registry);
        let scheme = if insecure { "http" } else { "https" };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("ig/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DistError::Network {
                registry: registry.clone(),
                detail: e.to_string(),
                hint: String::new(),
            })?;
        let actions = match access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        Ok(Registry {
            http,
            base: format!("{scheme}://{}", api_host(&registry)),
            scope: format!("repository:{}:{actions}", reference.repository),
            repository: reference.repository.clone(),
            creds: opts.credentials.lookup(&registry)?,
            registry,
            authorization: Mutex::new(None),
            insecure,
        })
    }

    /// Only checks that the registry answers `/v2/` with these credentials (`ig login`).
    pub fn for_login(
        registry: &str,
        creds: Credentials,
        opts: &RegistryOptions,
    ) -> Result<Self, DistError> {
        let reference = Reference {
            registry: registry.to_string(),
            repository: "ig-login".into(),
            tag: "latest".into(),
            digest: None,
        };
        let mut r = Registry::connect(&reference, Access::Pull, opts)?;
        r.creds = Some(creds);
        r.scope = String::new();
        Ok(r)
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn network(&self, e: reqwest::Error) -> DistError {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        // Only a failed TLS exchange suggests plain HTTP; a name that does not resolve does not.
        let looks_like_tls = detail.contains("tls")
            || detail.contains("TLS")
            || detail.contains("certificate")
            || detail.contains("InvalidContentType")
            || detail.contains("CorruptMessage");
        let hint = if self.insecure || !looks_like_tls {
            String::new()
        } else {
            format!(
                "; if {} serves plain HTTP, pass --insecure-registries {}",
                self.registry, self.registry
            )
        };
        DistError::Network {
            registry: self.registry.clone(),
            detail,
            hint,
        }
    }

    fn current_auth(&self) -> Option<String> {
        self.authorization.lock().ok().and_then(|a| a.clone())
    }

    fn set_auth(&self, value: String) {
        if let Ok(mut a) = self.authorization.lock() {
            *a = Some(value);
        }
    }

    /// Sends a request; on a 401, answers the challenge once and retries.
    async fn send(
        &self,
        what: &str,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, DistError> {
        let mut answered = false;
        loop {
            let mut req = make(&self.http);
            if let Some(a) = self.current_auth() {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|e| self.network(e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if answered {
                return Err(self.unauthorized(what));
            }
            answered = true;
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .and_then(Challenge::parse)
                .ok_or_else(|| self.unauthorized(what))?;
            self.answer(&challenge, what).await?;
        }
    }

    fn unauthorized(&self, what: &str) -> DistError {
        match &self.creds {
            Some(c) => DistError::AuthFailed {
                registry: self.registry.clone(),
                what: what.to_string(),
                user: c.username.clone(),
            },
            None => DistError::AuthRequired {
                registry: self.registry.clone(),
                what: what.to_string(),
            },
        }
    }

    async fn answer(&self, challenge: &Challenge, what: &str) -> Result<(), DistError> {
        if challenge.scheme.eq_ignore_ascii_case("basic") {
            let creds = self.creds.as_ref().ok_or_else(|| self.unauthorized(what))?;
            self.set_auth(basic_header(creds));
            return Ok(());
        }
        if !challenge.scheme.eq_ignore_ascii_case("bearer") {
            return Err(DistError::Protocol {
                registry: self.registry.clone(),
                what: what.to_string(),
                reason: format!("unsupported authentication scheme {:?}", challenge.scheme),
            });
        }
        let realm = challenge
            .param("realm")
            .ok_or_else(|| DistError::Protocol {
                registry: self.registry.clone(),
                what: what.to_string(),
                reason: "Bearer challenge without realm".into(),
            })?;
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = challenge.param("service") {
            query.push(("service", service));
        }
        let scope = challenge.param("scope").unwrap_or(&self.scope);
        if !scope.is_empty() {
            query.push(("scope", scope));
        }
        let mut req = self.http.get(realm).query(&query);
        if let Some(c) = &self.creds {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req.send().await.map_err(|e| self.network(e))?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => return Err(self.unauthorized(what)),
            StatusCode::FORBIDDEN => {
                return Err(DistError::Forbidden {
                    registry: self.registry.clone(),
                    what: what.to_string(),
                    detail: error_detail(resp).await,
                })
            }
            s => {
                return Err(DistError::Status {
                    registry: self.registry.clone(),
                    what: format!("token for {what} from {realm}"),
                    status: s.as_u16(),
                    detail: error_detail(resp).await,
                })
            }
        }
        let bytes = resp.bytes().await.map_err(|e| self.network(e))?;
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| DistError::Protocol {
                registry: self.registry.clone(),
                what: what.to_string(),
                reason: format!("invalid token response from {realm}: {e}"),
            })?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| DistError::Protocol {
                registry: self.registry.clone(),
                what: what.to_string(),
                reason: format!("token response from {realm} has no token"),
            })?;
        self.set_auth(format!("Bearer {token}"));
        Ok(())
    }

    async fn status_error(&self, resp: Response, what: &str) -> DistError {
        let status = resp.status();
        let detail = error_detail(resp).await;
        let (registry, what) = (self.registry.clone(), what.to_string());
        match status {
            StatusCode::UNAUTHORIZED => self.unauthorized(&what),
            StatusCode::FORBIDDEN => DistError::Forbidden {
                registry,
                what,
                detail,
            },
            StatusCode::NOT_FOUND => DistError::NotFound {
                registry,
                what,
                detail,
            },
            s => DistError::Status {
                registry,
                what,
                status: s.as_u16(),
                detail,
            },
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// `GET /v2/`: the registry answers and accepts our credentials.
    pub async fn ping(&self) -> Result<(), DistError> {
        let url = format!("{}/v2/", self.base);
        let what = "the API root /v2/";
        let resp = self.send(what, |h| h.get(&url)).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(resp, what).await)
        }
    }

    /// Reads a body, refusing more than `limit` bytes; `tick` sees each chunk's length.
    async fn read_body(
        &self,
        mut resp: Response,
        what: &str,
        limit: u64,
        tick: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<u8>, DistError> {
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.network(e))? {
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(DistError::Protocol {
                    registry: self.registry.clone(),
                    what: what.to_string(),
                    reason: format!("larger than the {limit} bytes expected"),
                });
            }
            out.extend_from_slice(&chunk);
            tick(chunk.len() as u64);
        }
        Ok(out)
    }

    /// Fetches a manifest or index by tag or digest, keeping its exact bytes; a digest
    /// reference (or the registry's `Docker-Content-Digest`) must match the content.
    pub async fn manifest(&self, tag_or_digest: &str) -> Result<RawManifest, DistError> {
        let url = self.url(&format!("manifests/{tag_or_digest}"));
        let what = format!(
            "manifest {}/{}:{tag_or_digest}",
            self.registry, self.repository
        );
        let accept = [MEDIA_INDEX, MEDIA_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");
        let resp = self
            .send(&what, |h| h.get(&url).header(ACCEPT, &accept))
            .await?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp, &what).await);
        }
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = self.read_body(resp, &what, MAX_MANIFEST, &|_| {}).await?;
        let digest = digest_of(&bytes);
        let expected = if tag_or_digest.starts_with("sha256:") {
            Some(tag_or_digest.to_string())
        } else {
            header_digest
        };
        if let Some(expected) = expected.filter(|d| d.starts_with("sha256:")) {
            if expected != digest {
                return Err(DistError::DigestMismatch {
                    registry: self.registry.clone(),
                    what,
                    expected,
                    actual: digest,
                });
            }
        }
        let body_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            });
        let media_type = body_type.or(header_type).unwrap_or_default();
        Ok(RawManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Fetches a blob and checks its size and digest.
    pub async fn blob(
        &self,
        digest: &str,
        size: u64,
        tick: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<u8>, DistError> {
        let url = self.url(&format!("blobs/{digest}"));
        let what = format!("blob {digest} of {}", self.repository);
        let resp = self.send(&what, |h| h.get(&url)).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp, &what).await);
        }
        let bytes = self
            .read_body(resp, &what, size.min(MAX_BLOB), tick)
            .await?;
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(DistError::DigestMismatch {
                registry: self.registry.clone(),
                what,
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub async fn has_blob(&self, digest: &str) -> Result<bool, DistError> {
        let url = self.url(&format!("blobs/{digest}"));
        let what = format!("blob {digest} of {}", self.repository);
        let resp = self.send(&what, |h| h.head(&url)).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(resp, &what).await),
        }
    }

    /// Uploads a blob in one request (POST, then PUT with the digest).
    pub async fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), DistError> {
        let what = format!("upload of blob {digest} to {}", self.repository);
        let start = self.url("blobs/uploads/");
        let resp = self
            .send(&what, |h| {
                h.request(Method::POST, &start)
                    .header("content-length", "0")
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(resp, &what).await);
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| DistError::Protocol {
                registry: self.registry.clone(),
                what: what.clone(),
                reason: "upload started without a Location".into(),
            })?;
        let mut url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("digest=");
        url.push_str(digest);
        self.put(&what, &url, "application/octet-stream", bytes)
            .await
    }

    /// Uploads a manifest or index under a tag or its digest.
    pub async fn put_manifest(
        &self,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), DistError> {
        let url = self.url(&format!("manifests/{tag_or_digest}"));
        let what = format!(
            "upload of manifest {}/{}:{tag_or_digest}",
            self.registry, self.repository
        );
        self.put(&what, &url, media_type, bytes).await
    }

    /// PUTs `bytes` and maps a refusal to an error naming `what`.
    async fn put(
        &self,
        what: &str,
        url: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<(), DistError> {
        let body = bytes.to_vec();
        let resp = self
            .send(what, |h| {
                h.put(url)
                    .header(CONTENT_TYPE, content_type)
                    .body(body.clone())
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(resp, what).await)
        }
    }
}
