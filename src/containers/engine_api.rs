//! The Docker Engine API over its unix socket, every answer bounded in size and in time.
//!
//! Our own small client rather than bollard's requests (bollard's models are still used): bollard
//! 0.18 reads every answer whole with no size limit (`decode_response` collects the body), its
//! timeout covers only the response head, not the body, and its event decoder buffers a line
//! without bound — so a broken or hostile socket could make `ig` use any amount of memory and
//! time. Here every request has a deadline, every answer a size limit, every event line too;
//! and a socket that is not a socket, refuses, or speaks something else than the Engine API is
//! told apart in the error.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

use super::container::RuntimeKind;
use super::error::ContainerError;

/// How long one request (head and whole answer) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer about one object (version, a container, an image).
pub const MAX_ANSWER: usize = 1 << 20;
/// Largest container listing (about 30,000 containers as Docker describes them).
pub const MAX_LIST: usize = 64 << 20;
/// Largest event (one JSON line of the event stream).
pub const MAX_EVENT: usize = 1 << 20;
/// How much of an error answer is read for its message.
const MAX_ERROR: usize = 64 << 10;
/// The newest API version we ask for (the engine may speak an older one).
const NEWEST: (u32, u32) = (1, 47);

#[derive(Clone)]
pub(super) struct EngineApi {
    socket: PathBuf,
    /// Who serves it (Docker, or podman's compatible service): named in errors.
    runtime: RuntimeKind,
    /// `/v1.41` once negotiated.
    prefix: String,
}

/// The connection task of one request; aborted when the request is done or dropped.
struct Conn(JoinHandle<()>);

impl Drop for Conn {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An id or image id as it may appear in a request path; anything else is not asked about.
pub(super) fn path_safe(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-:".contains(&b))
}

impl EngineApi {
    pub fn new(socket: &Path, runtime: RuntimeKind) -> Self {
        EngineApi {
            socket: socket.to_path_buf(),
            runtime,
            prefix: String::new(),
        }
    }

    fn err(&self, op: &'static str, reason: impl Into<String>) -> ContainerError {
        ContainerError::Engine {
            runtime: self.runtime,
            socket: self.socket.clone(),
            op,
            reason: reason.into(),
        }
    }

    fn not_api(&self, reason: impl Into<String>) -> ContainerError {
        ContainerError::NotDockerApi {
            runtime: self.runtime,
            socket: self.socket.clone(),
            reason: reason.into(),
        }
    }

    /// `GET /version`; from then on requests use the engine's API version (at most ours).
    /// podman: `GET /_ping`'s `Api-Version` header instead (its `/version` runs conmon and the
    /// OCI runtime to report their versions: 0.7 s here, on every `ig run`).
    pub async fn negotiate(&mut self) -> Result<(), ContainerError> {
        if self.runtime == RuntimeKind::Podman {
            return self.negotiate_by_ping().await;
        }
        #[derive(serde::Deserialize)]
        struct Version {
            #[serde(rename = "ApiVersion")]
            api_version: Option<String>,
        }
        let (status, body) = self.get("version", "/version", MAX_ANSWER).await?;
        if !status.is_success() {
            return Err(self.not_api(format!("GET /version answered HTTP {status}")));
        }
        let parsed = serde_json::from_slice::<Version>(&body)
            .ok()
            .and_then(|v| v.api_version)
            .and_then(|v| {
                let (major, minor) = v.split_once('.')?;
                Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
            });
        let Some(version) = parsed else {
            return Err(self.not_api("its /version answer has no ApiVersion"));
        };
        let (major, minor) = version.min(NEWEST);
        self.prefix = format!("/v{major}.{minor}");
        Ok(())
    }

    /// The API version from `GET /_ping`'s `Api-Version` header (Docker and podman send it).
    async fn negotiate_by_ping(&mut self) -> Result<(), ContainerError> {
        let op = "ping";
        let (resp, _conn) = tokio::time::timeout(REQUEST_TIMEOUT, self.send(op, "/_ping"))
            .await
            .map_err(|_| ContainerError::RequestTimeout {
                runtime: self.runtime,
                socket: self.socket.clone(),
                op,
                secs: REQUEST_TIMEOUT.as_secs(),
            })??;
        if !resp.status().is_success() {
            return Err(self.not_api(format!("GET /_ping answered HTTP {}", resp.status())));
        }
        let version = resp
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (major, minor) = v.trim().split_once('.')?;
                Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
            })
            .ok_or_else(|| self.not_api("its /_ping answer has no Api-Version header"))?;
        let (major, minor) = version.min(NEWEST);
        self.prefix = format!("/v{major}.{minor}");
        Ok(())
    }

    /// Connects and sends `GET prefix+path`; returns the response head and its connection.
    async fn send(
        &self,
        op: &'static str,
        path: &str,
    ) -> Result<(hyper::Response<Incoming>, Conn), ContainerError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            let reason = match e.kind() {
                ErrorKind::ConnectionRefused => {
                    let daemon = match self.runtime {
                        RuntimeKind::Podman => "podman system service",
                        _ => "dockerd",
                    };
                    format!("connection refused: nothing listens on it (is {daemon} running?)")
                }
                ErrorKind::NotFound => "it does not exist".to_string(),
                ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            ContainerError::Unreachable {
                runtime: self.runtime,
                socket: self.socket.clone(),
                reason,
            }
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.err(op, e.to_string()))?;
        let conn = Conn(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let uri = format!("{}{path}", self.prefix);
        let req = Request::get(uri.as_str())
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .map_err(|e| self.err(op, format!("invalid request {uri:?}: {e}")))?;
        let resp = sender.send_request(req).await.map_err(|e| {
            if e.is_parse() || e.is_parse_status() {
                self.not_api(format!("{op}: its answer is not HTTP ({e})"))
            } else {
                self.err(op, e.to_string())
            }
        })?;
        Ok((resp, conn))
    }

    /// `GET path`: status and body, at most `limit` bytes, within [`REQUEST_TIMEOUT`].
    pub async fn get(
        &self,
        op: &'static str,
        path: &str,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), ContainerError> {
        let request = async {
            let (resp, _conn) = self.send(op, path).await?;
            let status = resp.status();
            let limit = if status.is_success() {
                limit
            } else {
                MAX_ERROR
            };
            let mut body = resp.into_body();
            let mut out = BytesMut::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| self.err(op, e.to_string()))?;
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        if !status.is_success() {
                            break;
                        }
                        return Err(ContainerError::TooLarge {
                            runtime: self.runtime,
                            socket: self.socket.clone(),
                            op,
                            limit,
                        });
                    }
                    out.extend_from_slice(&data);
                }
            }
            Ok((status, out.freeze()))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, request)
            .await
            .map_err(|_| ContainerError::RequestTimeout {
                runtime: self.runtime,
                socket: self.socket.clone(),
                op,
                secs: REQUEST_TIMEOUT.as_secs(),
            })?
    }

    /// The error an unsuccessful answer stands for (`{"message": …}`).
    fn status_error(&self, op: &'static str, status: StatusCode, body: &[u8]) -> ContainerError {
        #[derive(serde::Deserialize)]
        struct Message {
            message: String,
        }
        let message = serde_json::from_slice::<Message>(body)
            .map(|m| m.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_string());
        self.err(op, format!("HTTP {status}: {message:?}"))
    }

    /// `GET path` as JSON; `None` on 404, and on podman's 500 for a container it no longer
    /// has (podman 4.3 answers a container removed between a list and its inspect with 500
    /// and libpod's "no such container", not 404). Also returns the answer's size.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        limit: usize,
    ) -> Result<Option<(T, usize)>, ContainerError> {
        let (status, body) = self.get(op, path, limit).await?;
        if status == StatusCode::NOT_FOUND || is_gone_container(status, &body) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.status_error(op, status, &body));
        }
        serde_json::from_slice(&body)
            .map(|v| Some((v, body.len())))
            .map_err(|e| self.err(op, format!("invalid answer: {e}")))
    }

    /// `GET path` answered by newline-separated JSON objects, as a stream; each at most
    /// [`MAX_EVENT`] bytes. Only the response head has a deadline.
    pub fn json_lines<T: DeserializeOwned + Send + 'static>(
        &self,
        op: &'static str,
        path: String,
    ) -> BoxStream<'static, Result<T, ContainerError>> {
        enum State {
            Start(EngineApi, String),
            Open {
                api: EngineApi,
                body: Incoming,
                buf: BytesMut,
                _conn: Conn,
            },
            Done,
        }
        let next = move |state: State| async move {
            let (api, mut body, mut buf, conn) = match state {
                State::Done => return None,
                State::Start(api, path) => {
                    let opened = tokio::time::timeout(REQUEST_TIMEOUT, api.send(op, &path)).await;
                    let (resp, conn) = match opened {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => return Some((Err(e), State::Done)),
                        Err(_) => {
                            let e = ContainerError::RequestTimeout {
                                runtime: api.runtime,
                                socket: api.socket.clone(),
                                op,
                                secs: REQUEST_TIMEOUT.as_secs(),
                            };
                            return Some((Err(e), State::Done));
                        }
                    };
                    if !resp.status().is_success() {
                        let e = api.err(op, format!("HTTP {}", resp.status()));
                        return Some((Err(e), State::Done));
                    }
                    (api, resp.into_body(), BytesMut::new(), conn)
                }
                State::Open {
                    api,
                    body,
                    buf,
                    _conn,
                } => (api, body, buf, _conn),
            };
            loop {
                if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line = buf.split_to(pos + 1);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let item = serde_json::from_slice::<T>(&line)
                        .map_err(|e| api.err(op, format!("invalid event: {e}")));
                    let state = State::Open {
                        api,
                        body,
                        buf,
                        _conn: conn,
                    };
                    return Some((item, state));
                }
                if buf.len() > MAX_EVENT {
                    let e = ContainerError::TooLarge {
                        runtime: api.runtime,
                        socket: api.socket.clone(),
                        op,
                        limit: MAX_EVENT,
                    };
                    return Some((Err(e), State::Done));
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(mut data) = frame.into_data() {
                            while data.has_remaining() {
                                let chunk = data.chunk();
                                let n = chunk.len();
                                buf.extend_from_slice(chunk);
                                data.advance(n);
                            }
                        }
                    }
                    Some(Err(e)) => return Some((Err(api.err(op, e.to_string())), State::Done)),
                    None => return None,
                }
            }
        };
        futures_util::stream::unfold(State::Start(self.clone(), path), next).boxed()
    }
}

/// podman's answer for a container that is gone: 500 with libpod's `ErrNoSuchCtr` text.
fn is_gone_container(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::INTERNAL_SERVER_ERROR
        && String::from_utf8_lossy(body).contains("no such container")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podmans_500_for_a_removed_container_means_gone() {
        // podman 4.3's answer, as seen when a container went between a list and its inspect.
        let body = br#"{"cause":"no such container","message":"container 65d546d5 does not exist in database: no such container","response":500}"#;
        assert!(is_gone_container(StatusCode::INTERNAL_SERVER_ERROR, body));
        assert!(!is_gone_container(
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"message":"database is locked"}"#
        ));
        assert!(!is_gone_container(StatusCode::OK, body));
    }
}
