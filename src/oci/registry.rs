//! A small client for the OCI distribution API (`/v2/…`) over reqwest with rustls: what pushing
//! and pulling gadget images needs — manifests and indexes byte for byte (their digests must
//! not change), blobs checked against their digests, Basic and Bearer-token authentication.
//!
//! Hand-written rather than `oci-client`: that crate re-serializes manifests through its own
//! types (dropping fields like `artifactType` would change digests and break signatures) and
//! has no first-class image-index push; the API surface we need is six requests.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use super::auth::{basic_header, Challenge, CredentialFiles, Credentials};
use super::deadline::{Activity, ConnectWatch, Connections, Deadlines, Missed};
use super::dist_error::DistError;
use super::types::{MEDIA_INDEX, MEDIA_MANIFEST};
use super::{digest_of, Reference};

/// Largest manifest or index accepted from a registry.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest blob accepted from a registry (gadget objects are kilobytes to a few megabytes).
pub const MAX_BLOB: u64 = 512 << 20;
/// Largest token answer accepted from an authentication realm.
const MAX_TOKEN: u64 = 1 << 20;
/// How much of an error answer is read for its message.
const MAX_ERROR_BODY: u64 = 64 << 10;
/// Uploads go out in chunks of this size, each one progress for the read deadline.
const UPLOAD_CHUNK: usize = 64 << 10;

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
    /// Connect, read and overall deadlines; `None`: the defaults and the `IG_REGISTRY_*`
    /// environment variables ([`Deadlines::from_env`]).
    pub deadlines: Option<Deadlines>,
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
    deadlines: Deadlines,
    conns: Arc<Connections>,
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
/// Reads at most [`MAX_ERROR_BODY`] bytes of the answer.
async fn error_detail(mut resp: Response, act: &Activity) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        act.touch();
        let room = (MAX_ERROR_BODY as usize).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= MAX_ERROR_BODY {
            break;
        }
    }
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
        let deadlines = match opts.deadlines {
            Some(d) => d,
            None => Deadlines::from_env()?,
        };
        let conns = Arc::new(Connections::default());
        let http = reqwest::Client::builder()
            .connect_timeout(deadlines.connect)
            .connector_layer(ConnectWatch(conns.clone()))
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
            deadlines,
            conns,
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
        if e.is_timeout() {
            // Only the connect deadline is reqwest's; the others are `Deadlines::guard`'s.
            return DistError::Timeout {
                registry: self.registry.clone(),
                what: format!("connecting to {}", self.base),
                missed: Missed::Connect(self.deadlines.connect),
            };
        }
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

    /// Runs one request (`op`, handed the activity it must touch on progress) under this
    /// registry's read and overall deadlines; `bytes`: how much it is expected to move.
    async fn guarded<T, F, Fut>(&self, what: &str, bytes: u64, op: F) -> Result<T, DistError>
    where
        F: FnOnce(Arc<Activity>) -> Fut,
        Fut: std::future::Future<Output = Result<T, DistError>>,
    {
        let act = Arc::new(Activity::new(self.conns.clone()));
        let fut = op(act.clone());
        self.deadlines
            .guard(&act, bytes, fut, |missed| DistError::Timeout {
                registry: self.registry.clone(),
                what: what.to_string(),
                missed,
            })
            .await
    }

    /// Sends a request; on a 401, answers the challenge once and retries. The response head
    /// counts as progress.
    async fn send(
        &self,
        act: &Activity,
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
            act.touch();
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
            self.answer(act, &challenge, what).await?;
        }
    }

    /// A challenge the registry should not have sent.
    fn bad_challenge(&self, what: &str, challenge: &Challenge, reason: &str) -> DistError {
        let params: Vec<String> = challenge
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        DistError::Protocol {
            registry: self.registry.clone(),
            what: what.to_string(),
            reason: format!(
                "the registry sent an invalid authentication challenge (WWW-Authenticate: {:?} {}): {reason}",
                challenge.scheme,
                params.join(",")
            ),
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

    async fn answer(
        &self,
        act: &Activity,
        challenge: &Challenge,
        what: &str,
    ) -> Result<(), DistError> {
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
            .ok_or_else(|| self.bad_challenge(what, challenge, "Bearer without a realm"))?;
        // The realm is where the token comes from: an absolute http(s) URL with a host.
        match reqwest::Url::parse(realm) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => {
                return Err(self.bad_challenge(
                    what,
                    challenge,
                    "its realm is not an absolute http(s) URL",
                ))
            }
        }
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
        act.touch();
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => return Err(self.unauthorized(what)),
            StatusCode::FORBIDDEN => {
                return Err(DistError::Forbidden {
                    registry: self.registry.clone(),
                    what: what.to_string(),
                    detail: error_detail(resp, act).await,
                })
            }
            s => {
                return Err(DistError::Status {
                    registry: self.registry.clone(),
                    what: format!("token for {what} from {realm}"),
                    status: s.as_u16(),
                    detail: error_detail(resp, act).await,
                })
            }
        }
        let bytes = self
            .read_body(
                act,
                resp,
                &format!("token from {realm}"),
                MAX_TOKEN,
                &|_| {},
            )
            .await?;
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

    async fn status_error(&self, act: &Activity, resp: Response, what: &str) -> DistError {
        let status = resp.status();
        let detail = error_detail(resp, act).await;
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
        self.guarded(what, 0, |act| async move {
            let resp = self.send(&act, what, |h| h.get(&url)).await?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(self.status_error(&act, resp, what).await)
            }
        })
        .await
    }

    /// Reads a body, refusing more than `limit` bytes; `tick` sees each chunk's length.
    async fn read_body(
        &self,
        act: &Activity,
        mut resp: Response,
        what: &str,
        limit: u64,
        tick: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<u8>, DistError> {
        let too_large = || DistError::Protocol {
            registry: self.registry.clone(),
            what: what.to_string(),
            reason: format!("larger than the {limit} bytes expected"),
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.network(e))? {
            act.touch();
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
            tick(chunk.len() as u64);
        }
        Ok(out)
    }

    /// Fetches a manifest or index by tag or digest, keeping its exact bytes; a digest
    /// reference (or the registry's `Docker-Content-Digest`) must match the content.
    pub async fn manifest(&self, tag_or_digest: &str) -> Result<RawManifest, DistError> {
        let what = format!(
            "manifest {}/{}:{tag_or_digest}",
            self.registry, self.repository
        );
        self.guarded(&what, 0, |act| self.manifest_in(act, tag_or_digest, &what))
            .await
    }

    async fn manifest_in(
        &self,
        act: Arc<Activity>,
        tag_or_digest: &str,
        what: &str,
    ) -> Result<RawManifest, DistError> {
        let url = self.url(&format!("manifests/{tag_or_digest}"));
        let accept = [MEDIA_INDEX, MEDIA_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");
        let resp = self
            .send(&act, what, |h| h.get(&url).header(ACCEPT, &accept))
            .await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&act, resp, what).await);
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
        let bytes = self
            .read_body(&act, resp, what, MAX_MANIFEST, &|_| {})
            .await?;
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
                    what: what.to_string(),
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
        let limit = size.min(MAX_BLOB);
        let w: &str = &what;
        let bytes = self
            .guarded(&what, limit, |act| async move {
                let resp = self.send(&act, w, |h| h.get(&url)).await?;
                if !resp.status().is_success() {
                    return Err(self.status_error(&act, resp, w).await);
                }
                self.read_body(&act, resp, w, limit, tick).await
            })
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
        let w: &str = &what;
        self.guarded(&what, 0, |act| async move {
            let resp = self.send(&act, w, |h| h.head(&url)).await?;
            match resp.status() {
                s if s.is_success() => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(self.status_error(&act, resp, w).await),
            }
        })
        .await
    }

    /// Uploads a blob in one request (POST, then PUT with the digest).
    pub async fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), DistError> {
        let what = format!("upload of blob {digest} to {}", self.repository);
        let start = self.url("blobs/uploads/");
        let w: &str = &what;
        let location = self
            .guarded(&what, 0, |act| async move {
                let resp = self
                    .send(&act, w, |h| {
                        h.request(Method::POST, &start)
                            .header("content-length", "0")
                    })
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.status_error(&act, resp, w).await);
                }
                resp.headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| DistError::Protocol {
                        registry: self.registry.clone(),
                        what: w.to_string(),
                        reason: "upload started without a Location".into(),
                    })
            })
            .await?;
        let mut url = if location.starts_with("http://") || location.starts_with("https://") {
            location
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

    /// PUTs `bytes` and maps a refusal to an error naming `what`. The body goes out in chunks;
    /// each one taken is progress for the read deadline, so a slow but live upload goes on.
    async fn put(
        &self,
        what: &str,
        url: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<(), DistError> {
        let body = Bytes::copy_from_slice(bytes);
        self.guarded(what, body.len() as u64, |act| async move {
            let resp = self
                .send(&act, what, |h| {
                    h.put(url)
                        .header(CONTENT_TYPE, content_type)
                        .header(reqwest::header::CONTENT_LENGTH, body.len())
                        .body(chunked(body.clone(), act.clone()))
                })
                .await?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(self.status_error(&act, resp, what).await)
            }
        })
        .await
    }
}

/// `bytes` as a streamed body whose every chunk, when taken, touches `act`.
fn chunked(bytes: Bytes, act: Arc<Activity>) -> reqwest::Body {
    let chunks: Vec<Bytes> = (0..bytes.len())
        .step_by(UPLOAD_CHUNK)
        .map(|at| bytes.slice(at..(at + UPLOAD_CHUNK).min(bytes.len())))
        .collect();
    let stream = futures_util::stream::iter(chunks).map(move |c| {
        act.touch();
        Ok::<_, std::io::Error>(hyper::body::Frame::data(c))
    });
    reqwest::Body::wrap(http_body_util::StreamBody::new(stream))
}
