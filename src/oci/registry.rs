//! Registry traffic (the OCI distribution API) through `oci-client`: authentication challenges
//! and token exchange, manifests and indexes pushed and pulled as raw bytes (their digests must
//! not change: `pull_manifest_raw`/`push_manifest_raw`), blobs streamed and checked against
//! their digests. What stays ours: the deadlines around each call ([`Deadlines`]), the size
//! limits we can still apply, and turning the crate's errors into [`DistError`]s that name the
//! registry and say what to do.
//!
//! Limits of oci-client 0.15 (the last release on reqwest 0.12, which the rest of ig uses), and
//! what is done about each:
//! * it builds its own reqwest client (no connector layer of ours, so the hand-written client's
//!   watch of connections being made is gone); reqwest's `read_timeout` runs one timer from the
//!   start of a request until the answer's head (connecting and sending count), then one per
//!   chunk of the body. It is given connect + read, so a connection that used its whole connect
//!   deadline still has the read deadline for the answer: a stalled registry is caught within
//!   connect + read (the error names the read deadline, the setting to change).
//! * it swallows authentication failures while answering a challenge (the request then goes out
//!   anonymously): [`Registry::authenticate`] calls `Client::auth` once first, whose errors it
//!   reports (an invalid realm, a refused password), and checks the token fits a header (the
//!   crate would panic on one that does not).
//! * it reads manifests, error answers and token answers whole (`Response::bytes`/`text`),
//!   without a limit, and builds its reqwest client itself (no layer of ours can cut a body).
//!   What is done about it, request by request:
//!   - manifests and indexes (`GET /v2/<name>/manifests/<ref>`, pulls and `ig login`'s probe)
//!     are requested by our own code ([`Registry::get_manifest`], the one request we make
//!     ourselves): the body is read as a stream and refused past [`MAX_MANIFEST`], an error
//!     answer is read up to [`MAX_ERROR_BODY`]. It uses the crate's Bearer token
//!     (`Client::auth`) or the Basic credentials, the same deadlines and TLS settings.
//!   - token answers stay unbounded: the token request (`GET <realm>?scope=…&service=…`, its
//!     200 answer and its error answer, both `Response::text`) is made inside the crate, by
//!     `Client::auth` (which [`Registry::authenticate`] calls) and again by the crate on its own
//!     before any blob or upload request once its cached token expired. Bounding it means
//!     answering challenges ourselves and handing the crate fixed tokens
//!     (`RegistryAuth::Bearer`), which its cache then renews with the stale token: not done.
//!   - error answers of the requests only the crate makes stay unbounded: a blob `GET` (pull,
//!     and [`Registry::has_blob`]'s range request) answered with anything but 200/206 (read
//!     whole into the error's message; a 200/206 body is streamed and bounded by us), and the
//!     upload requests (`POST`/`PATCH`/`PUT` of a blob upload, `PUT` of a manifest) answered
//!     with an unexpected status. `GET /v2/` of the challenge is never read past its head.
//!   - for those, only the overall deadline ([`Deadlines::overall_for`], 300 s by default)
//!     bounds what a hostile registry can make ig hold.
//! * it has no blob existence check (`HEAD`): [`Registry::has_blob`] asks for a blob's first
//!   byte instead.
//! * a chunk of an upload (4 MiB) is one request under reqwest's read timer, so a chunk has
//!   connect + read to go out: at the default deadlines (45 s), links slower than ~90 KiB/s
//!   cannot push blobs larger than a chunk (the hand-written client counted each chunk taken as
//!   progress). Gadget objects are kilobytes to a few hundred kilobytes.
//! * its monolithic upload (used when a registry answers a chunked upload against the spec)
//!   `unwrap`s the upload URL the registry gives, and a token renewed after it expired is set
//!   as a header with `unwrap`: such a panic is caught around the call ([`Registry::guarded`])
//!   and reported as an error naming the registry (Rust's panic message still reaches stderr).
//! * it has no request for `/v2/` alone: `ig login` ([`Registry::ping`]) takes a token from a
//!   Bearer realm as proof, and otherwise asks for a manifest (`ig-login:latest`), which a
//!   registry refuses with 401 for wrong credentials and answers 404 or 200 for right ones.
//! * `push_manifest_raw` panics when a registry answers a push by digest without a `Location`:
//!   manifests are therefore pushed under their digest given as the tag.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciEnvelope, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use reqwest::header::HeaderValue;
use reqwest::StatusCode;

use super::auth::{CredentialFiles, Credentials};
use super::deadline::{Deadlines, Missed};
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
    client: Client,
    registry: String,
    repository: String,
    operation: RegistryOperation,
    creds: Option<Credentials>,
    insecure: bool,
    deadlines: Deadlines,
    /// Our own client for the one request we make ourselves (manifests, [`Registry::get_manifest`]),
    /// built with the same settings as the crate's.
    http: reqwest::Client,
    /// `scheme://host` the crate's manifest URLs start with (`docker.io` resolved as it does).
    endpoint: String,
    /// When the challenge was last answered, and the Bearer token it gave (`None`: Basic or no
    /// authentication); renewed after [`TOKEN_REUSE`].
    token: tokio::sync::Mutex<Option<(Instant, Option<String>)>>,
}

/// How long a Bearer token is reused by our manifest requests. The token specification lets a
/// token live 60 s when its answer gives no `expires_in`, and says none should be issued for
/// less (<https://distribution.github.io/distribution/spec/auth/token/>).
const TOKEN_REUSE: Duration = Duration::from_secs(50);

/// Largest error answer kept from a manifest request (the rest is not read).
pub const MAX_ERROR_BODY: usize = 64 << 10;

/// A manifest or index as the registry returned it.
pub struct RawManifest {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// `": CODE message; …"` from a registry's error list, or its text when short.
fn detail_of(body: &[u8]) -> String {
    if let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(body) {
        return envelope_detail(&envelope);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() || text.len() > 300 {
        String::new()
    } else {
        format!(": {text}")
    }
}

fn code_name(code: &OciErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn envelope_detail(envelope: &OciEnvelope) -> String {
    let msgs: Vec<String> = envelope
        .errors
        .iter()
        .map(|e| {
            format!("{} {}", code_name(&e.code), e.message)
                .trim()
                .to_string()
        })
        .collect();
    if msgs.is_empty() {
        String::new()
    } else {
        format!(": {}", msgs.join("; "))
    }
}

/// Up to `limit` bytes of an answer's body; the rest is not read (the connection is dropped).
/// A failure while reading ends the body where it failed: it is only the detail of an error.
async fn read_bounded(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    body
}

/// The crate's error for a non-200 answer, as its own manifest request makes it (0.15's
/// `validate_registry_response`), so that [`Registry::error`] maps both alike.
fn answer_error(status: StatusCode, body: &[u8], url: &str) -> OciDistributionError {
    let url = url.to_string();
    if status == StatusCode::UNAUTHORIZED {
        return OciDistributionError::UnauthorizedError { url };
    }
    if status.is_success() {
        return OciDistributionError::SpecViolationError(format!(
            "expected HTTP status 200, got {status}"
        ));
    }
    match serde_json::from_slice::<OciEnvelope>(body) {
        Ok(envelope) if status.is_client_error() => {
            OciDistributionError::RegistryError { envelope, url }
        }
        _ => OciDistributionError::ServerError {
            code: status.as_u16(),
            url,
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

impl Registry {
    /// Connects to `reference`'s repository with the credentials found for its registry. The
    /// lookup may run a Docker credential helper (up to 30 s): it runs on tokio's blocking
    /// pool, not on a worker of the runtime.
    pub async fn connect(
        reference: &Reference,
        access: Access,
        opts: &RegistryOptions,
    ) -> Result<Self, DistError> {
        let files = opts.credentials.clone();
        let registry = reference.registry.clone();
        let creds = tokio::task::spawn_blocking(move || files.lookup(&registry))
            .await
            .map_err(|e| DistError::Credentials {
                path: opts.credentials.files.first().cloned().unwrap_or_default(),
                reason: format!(
                    "the credential lookup for {} failed: {e}",
                    reference.registry
                ),
            })??;
        Registry::with_credentials(reference, access, opts, creds)
    }

    fn with_credentials(
        reference: &Reference,
        access: Access,
        opts: &RegistryOptions,
        creds: Option<Credentials>,
    ) -> Result<Self, DistError> {
        let registry = reference.registry.clone();
        let insecure = opts.is_insecure(&registry);
        let deadlines = match opts.deadlines {
            Some(d) => d,
            None => Deadlines::from_env()?,
        };
        let user_agent = concat!("ig/", env!("CARGO_PKG_VERSION"));
        let read_timeout = deadlines.connect.saturating_add(deadlines.read);
        let config = ClientConfig {
            protocol: if insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(deadlines.connect),
            read_timeout: Some(read_timeout),
            user_agent,
            ..ClientConfig::default()
        };
        let client_error = |detail: String| DistError::Network {
            registry: registry.clone(),
            detail,
            hint: String::new(),
        };
        let client = Client::try_from(config).map_err(|e| client_error(e.to_string()))?;
        // The settings oci-client gives its reqwest client from the config above (0.15's
        // `TryFrom<ClientConfig>`): no extra roots, certificates checked, no proxy of its own.
        let http = reqwest::Client::builder()
            .connect_timeout(deadlines.connect)
            .read_timeout(read_timeout)
            .user_agent(user_agent)
            .build()
            .map_err(|e| client_error(e.to_string()))?;
        let resolved = oci_client::Reference::with_tag(
            registry.clone(),
            reference.repository.clone(),
            "latest".into(),
        );
        let endpoint = format!(
            "{}://{}",
            if insecure { "http" } else { "https" },
            resolved.resolve_registry()
        );
        Ok(Registry {
            client,
            repository: reference.repository.clone(),
            operation: match access {
                Access::Pull => RegistryOperation::Pull,
                Access::Push => RegistryOperation::Push,
            },
            creds,
            registry,
            insecure,
            deadlines,
            http,
            endpoint,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// Only checks that the registry accepts these credentials (`ig login`); no lookup.
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
        Registry::with_credentials(&reference, Access::Pull, opts, Some(creds))
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn auth(&self) -> RegistryAuth {
        match &self.creds {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// The crate's reference to `tag_or_digest` in this repository. A digest is given as the
    /// tag too: `push_manifest_raw` panics on a push by digest the registry answers without a
    /// `Location`, and the URL is the same.
    fn reference(&self, tag_or_digest: &str) -> oci_client::Reference {
        oci_client::Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            tag_or_digest.to_string(),
        )
    }

    /// Runs one call under the overall deadline of a request moving `bytes`; the connect and
    /// read deadlines are the client's. A panic of the crate on a registry's answer (see the
    /// module's notes) ends the call with an error instead of ending ig.
    async fn guarded<T>(
        &self,
        what: &str,
        bytes: u64,
        fut: impl Future<Output = Result<T, DistError>>,
    ) -> Result<T, DistError> {
        let overall = self.deadlines.overall_for(bytes);
        match tokio::time::timeout(overall, AssertUnwindSafe(fut).catch_unwind()).await {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(DistError::Protocol {
                    registry: self.registry.clone(),
                    what: what.to_string(),
                    reason: format!("the registry client failed on the registry's answer: {msg}"),
                })
            }
            Err(_) => Err(DistError::Timeout {
                registry: self.registry.clone(),
                what: what.to_string(),
                missed: Missed::Overall(overall),
            }),
        }
    }

    /// Answers the registry's challenge (`GET /v2/`, then the token realm) through the crate's
    /// `Client::auth`, so that a failure is reported rather than swallowed by the crate; returns
    /// the Bearer token (`None`: Basic or no authentication). The answer is reused for
    /// [`TOKEN_REUSE`], then asked again (the crate renews its own copy by itself).
    async fn authenticate(&self, what: &str) -> Result<Option<String>, DistError> {
        let mut cached = self.token.lock().await;
        if let Some((at, token)) = cached.as_ref() {
            if at.elapsed() < TOKEN_REUSE {
                return Ok(token.clone());
            }
        }
        let reference = self.reference("latest");
        let auth = self.auth();
        let token = self
            .guarded(what, 0, async {
                self.client
                    .auth(&reference, &auth, self.operation)
                    .await
                    .map_err(|e| self.auth_error(e, what))
            })
            .await?;
        if let Some(token) = &token {
            // The crate sets it as a header with `unwrap`: refuse it here instead.
            if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
                return Err(DistError::Protocol {
                    registry: self.registry.clone(),
                    what: what.to_string(),
                    reason: "the token realm sent a token that is not a valid HTTP header value"
                        .into(),
                });
            }
        }
        *cached = Some((Instant::now(), token.clone()));
        Ok(token)
    }

    /// An error of the challenge answer.
    fn auth_error(&self, e: OciDistributionError, what: &str) -> DistError {
        match e {
            // The only URL of the exchange not built by the crate is the challenge's realm.
            OciDistributionError::RequestError(re) if re.is_builder() => DistError::Protocol {
                registry: self.registry.clone(),
                what: what.to_string(),
                reason: "the registry sent an invalid authentication challenge: its realm is not an absolute http(s) URL".into(),
            },
            OciDistributionError::AuthenticationFailure(_) => self.unauthorized(what),
            OciDistributionError::RegistryTokenDecodeError(reason) => DistError::Protocol {
                registry: self.registry.clone(),
                what: what.to_string(),
                reason: format!("invalid token response: {reason}"),
            },
            e => self.error(e, what),
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

    fn status(&self, status: u16, what: &str, detail: String) -> DistError {
        let (registry, what) = (self.registry.clone(), what.to_string());
        match StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY) {
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
            _ => DistError::Status {
                registry,
                what,
                status,
                detail,
            },
        }
    }

    fn network(&self, e: &reqwest::Error) -> DistError {
        if e.is_timeout() {
            let missed = if e.is_connect() {
                Missed::Connect(self.deadlines.connect)
            } else {
                Missed::Read(self.deadlines.read)
            };
            return DistError::Timeout {
                registry: self.registry.clone(),
                what: match e.url() {
                    Some(u) if e.is_connect() => {
                        format!("connecting to {}", u.origin().ascii_serialization())
                    }
                    _ => "request".into(),
                },
                missed,
            };
        }
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
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

    /// The crate's error as ours, naming `what` was being done.
    fn error(&self, e: OciDistributionError, what: &str) -> DistError {
        let protocol = |reason: String| DistError::Protocol {
            registry: self.registry.clone(),
            what: what.to_string(),
            reason,
        };
        match e {
            OciDistributionError::RequestError(re) => match re.status() {
                Some(s) => self.status(s.as_u16(), what, String::new()),
                None if re.is_timeout() => match self.network(&re) {
                    DistError::Timeout { missed, .. } => DistError::Timeout {
                        registry: self.registry.clone(),
                        what: what.to_string(),
                        missed,
                    },
                    other => other,
                },
                None => self.network(&re),
            },
            OciDistributionError::UnauthorizedError { .. } => self.unauthorized(what),
            OciDistributionError::AuthenticationFailure(_) => self.unauthorized(what),
            OciDistributionError::ImageManifestNotFoundError(m) => DistError::NotFound {
                registry: self.registry.clone(),
                what: what.to_string(),
                detail: format!(": {m}"),
            },
            OciDistributionError::RegistryError { envelope, .. } => {
                let detail = envelope_detail(&envelope);
                let first = envelope.errors.first().map(|e| &e.code);
                match first {
                    Some(OciErrorCode::Unauthorized) => self.unauthorized(what),
                    Some(OciErrorCode::Denied) => self.status(403, what, detail),
                    Some(
                        OciErrorCode::NameUnknown
                        | OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::BlobUploadUnknown,
                    ) => self.status(404, what, detail),
                    _ => protocol(format!("the registry refused it{detail}")),
                }
            }
            OciDistributionError::ServerError { code, message, .. } => {
                self.status(code, what, detail_of(message.as_bytes()))
            }
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected,
                actual,
            }) => DistError::DigestMismatch {
                registry: self.registry.clone(),
                what: what.to_string(),
                expected,
                actual,
            },
            OciDistributionError::RegistryTokenDecodeError(reason) => {
                protocol(format!("invalid token response: {reason}"))
            }
            other => protocol(other.to_string()),
        }
    }

    /// A blob stream's error: the crate's digest check, or the transfer's.
    fn stream_error(&self, e: std::io::Error, what: &str) -> DistError {
        let inner = e.into_inner();
        if let Some(inner) = inner.as_ref() {
            if let Some(DigestError::VerificationError { expected, actual }) =
                inner.downcast_ref::<DigestError>()
            {
                return DistError::DigestMismatch {
                    registry: self.registry.clone(),
                    what: what.to_string(),
                    expected: expected.clone(),
                    actual: actual.clone(),
                };
            }
            if let Some(re) = inner.downcast_ref::<reqwest::Error>() {
                return match self.network(re) {
                    DistError::Timeout { missed, .. } => DistError::Timeout {
                        registry: self.registry.clone(),
                        what: what.to_string(),
                        missed,
                    },
                    other => other,
                };
            }
        }
        DistError::Protocol {
            registry: self.registry.clone(),
            what: what.to_string(),
            reason: inner.map(|i| i.to_string()).unwrap_or_default(),
        }
    }

    /// Checks that the registry answers and accepts our credentials (`ig login`): a token from
    /// its realm, or (Basic or no authentication) a manifest request that is not refused.
    pub async fn ping(&self) -> Result<(), DistError> {
        let what = "the API root /v2/";
        if self.authenticate(what).await?.is_some() {
            return Ok(());
        }
        match self.get_manifest("latest", what).await {
            Ok(_) | Err(DistError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET /v2/<repository>/manifests/<tag_or_digest>` with our own reqwest client, under the
    /// overall deadline of [`Registry::guarded`]. Returns the body, byte for byte, and the
    /// `Docker-Content-Digest` the registry announced.
    ///
    /// Ours, not the crate's `pull_manifest_raw`: oci-client 0.15 reads the whole answer into
    /// memory (`Response::bytes`) before anyone can look at its size, so a registry sending an
    /// endless manifest or error answer made ig hold gigabytes until the overall deadline. Here
    /// the body is read chunk by chunk and refused past [`MAX_MANIFEST`]; an error answer is
    /// read up to [`MAX_ERROR_BODY`]. Authentication is still the crate's: the Bearer token its
    /// `Client::auth` returns, else the Basic credentials (the crate sends them after a Basic
    /// challenge; we send them to the registry they are stored for without waiting for one).
    async fn get_manifest(
        &self,
        tag_or_digest: &str,
        what: &str,
    ) -> Result<(Vec<u8>, Option<String>), DistError> {
        let token = self.authenticate(what).await?;
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.endpoint, self.repository
        );
        let accept = [MEDIA_INDEX, MEDIA_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");
        let mut request = self.http.get(&url).header(reqwest::header::ACCEPT, accept);
        request = match (&token, &self.creds) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some(c)) => request.basic_auth(&c.username, Some(&c.password)),
            (None, None) => request,
        };
        let net = |e: reqwest::Error| match self.network(&e) {
            DistError::Timeout { missed, .. } => DistError::Timeout {
                registry: self.registry.clone(),
                what: what.to_string(),
                missed,
            },
            other => other,
        };
        let too_large = || DistError::Protocol {
            registry: self.registry.clone(),
            what: what.to_string(),
            reason: format!(
                "the answer is larger than the manifest limit of {MAX_MANIFEST} bytes; refusing it"
            ),
        };
        self.guarded(what, 0, async {
            let mut response = request.send().await.map_err(net)?;
            let status = response.status();
            if status != StatusCode::OK {
                let body = read_bounded(&mut response, MAX_ERROR_BODY).await;
                return Err(self.error(answer_error(status, &body, &url), what));
            }
            if response.content_length().is_some_and(|n| n > MAX_MANIFEST) {
                return Err(too_large());
            }
            let announced = response
                .headers()
                .get("Docker-Content-Digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(net)? {
                if body.len() as u64 + chunk.len() as u64 > MAX_MANIFEST {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok((body, announced))
        })
        .await
    }

    /// Fetches a manifest or index by tag or digest, keeping its exact bytes; a digest
    /// reference (or the registry's `Docker-Content-Digest`) must match the content.
    pub async fn manifest(&self, tag_or_digest: &str) -> Result<RawManifest, DistError> {
        let what = format!(
            "manifest {}/{}:{tag_or_digest}",
            self.registry, self.repository
        );
        let (bytes, announced) = self.get_manifest(tag_or_digest, &what).await?;
        let digest = digest_of(&bytes);
        // A digest the registry announces in another algorithm is not checked (we name and
        // store content by sha256 only); a sha256 one must match.
        for expected in [Some(tag_or_digest), announced.as_deref()]
            .into_iter()
            .flatten()
            .filter(|d| d.starts_with("sha256:"))
        {
            if expected != digest {
                return Err(DistError::DigestMismatch {
                    registry: self.registry.clone(),
                    what,
                    expected: expected.to_string(),
                    actual: digest,
                });
            }
        }
        // The media type the document declares; without one (it is optional), what its shape
        // says (the Content-Type is not trusted over the document).
        let doc = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        let media_type = doc
            .as_ref()
            .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()))
            .map(str::to_string)
            .or_else(|| {
                let doc = doc.as_ref()?;
                if doc.get("manifests").is_some() {
                    Some(MEDIA_INDEX.to_string())
                } else if doc.get("layers").is_some() {
                    Some(MEDIA_MANIFEST.to_string())
                } else {
                    None
                }
            })
            .unwrap_or_default();
        Ok(RawManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Fetches a blob and checks its size and digest; `tick` sees each chunk's length.
    pub async fn blob(
        &self,
        digest: &str,
        size: u64,
        tick: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<u8>, DistError> {
        let what = format!("blob {digest} of {}", self.repository);
        self.authenticate(&what).await?;
        let limit = size.min(MAX_BLOB);
        let reference = self.reference("latest");
        let w: &str = &what;
        let too_large = || DistError::Protocol {
            registry: self.registry.clone(),
            what: w.to_string(),
            reason: format!("larger than the {limit} bytes expected"),
        };
        let bytes = self
            .guarded(&what, limit, async {
                let mut stream = self
                    .client
                    .pull_blob_stream(&reference, digest)
                    .await
                    .map_err(|e| self.error(e, w))?;
                if stream.content_length.is_some_and(|n| n > limit) {
                    return Err(too_large());
                }
                let mut out = Vec::new();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| self.stream_error(e, w))?;
                    if out.len() as u64 + chunk.len() as u64 > limit {
                        return Err(too_large());
                    }
                    out.extend_from_slice(&chunk);
                    tick(chunk.len() as u64);
                }
                Ok(out)
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

    /// Whether the registry has the blob. oci-client 0.15 has no `HEAD` of a blob: this asks
    /// for its first byte (a range request; a registry that ignores the range starts sending
    /// the blob, and the answer is dropped after its head).
    pub async fn has_blob(&self, digest: &str) -> Result<bool, DistError> {
        let what = format!("blob {digest} of {}", self.repository);
        self.authenticate(&what).await?;
        let reference = self.reference("latest");
        let probe = self
            .guarded(&what, 0, async {
                self.client
                    .pull_blob_stream_partial(&reference, digest, 0, Some(1))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.error(e, &what))
            })
            .await;
        match probe {
            Ok(()) => Ok(true),
            Err(DistError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads a blob (the crate's chunked upload, monolithic when the registry wants it).
    pub async fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), DistError> {
        let what = format!("upload of blob {digest} to {}", self.repository);
        self.authenticate(&what).await?;
        let reference = self.reference("latest");
        self.guarded(&what, bytes.len() as u64, async {
            self.client
                .push_blob(&reference, bytes, digest)
                .await
                .map(|_| ())
                .map_err(|e| self.error(e, &what))
        })
        .await
    }

    /// Uploads a manifest or index under a tag or its digest, byte for byte.
    pub async fn put_manifest(
        &self,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), DistError> {
        let what = format!(
            "upload of manifest {}/{}:{tag_or_digest}",
            self.registry, self.repository
        );
        self.authenticate(&what).await?;
        let content_type = HeaderValue::from_str(media_type).map_err(|_| DistError::Protocol {
            registry: self.registry.clone(),
            what: what.clone(),
            reason: format!("media type {media_type:?} is not a valid header value"),
        })?;
        let reference = self.reference(tag_or_digest);
        self.guarded(&what, bytes.len() as u64, async {
            self.client
                .push_manifest_raw(&reference, bytes.to_vec(), content_type)
                .await
                .map(|_| ())
                .map_err(|e| self.error(e, &what))
        })
        .await
    }
}
