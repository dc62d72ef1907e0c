//! Docker through its Engine API socket, with API version negotiation (Debian's docker.io 20.10
//! speaks API 1.41). podman is served by the same client on its Docker-compatible socket
//! (`podman system service`; Debian's podman 4.3 answers API 1.41 with Docker's shapes for
//! `/containers/json`, `/containers/ID/json` (`State.Pid`, `State.StartedAt`) and `/events`);
//! only the runtime named on the containers differs, and podman announces a removal as
//! `remove` where Docker says `destroy`. Requests go through [`EngineApi`] (every answer bounded in size and time);
//! bollard supplies the models. A listing is capped at [`MAX_CONTAINERS`] (with a warning) and
//! its containers are inspected [`INSPECT_CONCURRENCY`] at a time, within a byte budget.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, EventMessage};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use serde::de::{DeserializeSeed, IgnoredAny, SeqAccess, Visitor};

use super::container::{Container, K8sMeta, RuntimeKind};
use super::engine_api::{path_safe, EngineApi, MAX_ANSWER, MAX_LIST};
use super::error::ContainerError;
use super::mntns::MntnsKey;
use super::procfs;
use super::runtime::{RuntimeClient, RuntimeEvent};
use super::timestamp::parse_rfc3339;

/// Most containers taken from one listing; the rest are left out with a warning (and are
/// still resolved one by one when their processes show up).
pub const MAX_CONTAINERS: usize = 4096;
/// Inspections in flight at once while listing.
pub const INSPECT_CONCURRENCY: usize = 16;
/// Most bytes of inspection answers one listing reads.
pub const LIST_BUDGET: usize = 256 << 20;

pub struct DockerClient {
    api: EngineApi,
    socket: PathBuf,
    /// Docker, or podman behind its compatible API: the `runtimeName` of its containers.
    kind: RuntimeKind,
    /// The listing was capped once already (warn once).
    warned_cap: AtomicBool,
}

/// The ids of a `/containers/json` answer: the first `max`, and how many there were.
struct CappedIds {
    max: usize,
}

impl<'de> DeserializeSeed<'de> for CappedIds {
    type Value = (Vec<String>, usize);
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CappedIds {
    type Value = (Vec<String>, usize);
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of containers")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        #[derive(serde::Deserialize)]
        struct Summary {
            #[serde(rename = "Id", default)]
            id: String,
        }
        let mut ids = Vec::new();
        let mut total = 0;
        loop {
            let more = if ids.len() < self.max {
                seq.next_element::<Summary>()?.map(|s| ids.push(s.id))
            } else {
                seq.next_element::<IgnoredAny>()?.map(|_| ())
            };
            if more.is_none() {
                return Ok((ids, total));
            }
            total += 1;
        }
    }
}

impl DockerClient {
    /// Connects and negotiates the API version (which also tells a Docker socket from others).
    pub async fn connect(socket: &Path) -> Result<Self, ContainerError> {
        Self::connect_as(socket, RuntimeKind::Docker).await
    }

    /// [`Self::connect`] to an engine that speaks Docker's API for `kind` (podman's service);
    /// its containers are named with `kind`.
    pub async fn connect_as(socket: &Path, kind: RuntimeKind) -> Result<Self, ContainerError> {
        let mut api = EngineApi::new(socket, kind);
        api.negotiate().await?;
        Ok(DockerClient {
            api,
            socket: socket.to_path_buf(),
            kind,
            warned_cap: AtomicBool::new(false),
        })
    }

    /// `docker inspect ID` and the size of the answer; `None` when Docker does not know it.
    async fn inspect_raw(
        &self,
        id: &str,
    ) -> Result<Option<(ContainerInspectResponse, usize)>, ContainerError> {
        if !path_safe(id) {
            return Ok(None);
        }
        let op = "inspect container";
        let Some((mut raw, size)) = self
            .api
            .get_json::<serde_json::Value>(op, &format!("/containers/{id}/json"), MAX_ANSWER)
            .await?
        else {
            return Ok(None);
        };
        docker_state_terms(&mut raw);
        let info = serde_json::from_value(raw).map_err(|e| ContainerError::Engine {
            runtime: self.kind,
            socket: self.socket.clone(),
            op,
            reason: format!("invalid answer: {e}"),
        })?;
        Ok(Some((info, size)))
    }

    async fn inspect_running(
        &self,
        id: &str,
        pid_hint: Option<u32>,
    ) -> Result<Option<Container>, ContainerError> {
        Ok(self.inspect_sized(id, pid_hint).await?.and_then(|(c, _)| c))
    }

    /// A running container and the bytes its inspection took.
    async fn inspect_sized(
        &self,
        id: &str,
        pid_hint: Option<u32>,
    ) -> Result<Option<(Option<Container>, usize)>, ContainerError> {
        let Some((info, size)) = self.inspect_raw(id).await? else {
            return Ok(None);
        };
        let digest = match &info.image {
            Some(image_id) => self.image_digest(image_id).await,
            None => None,
        };
        let found = container_from_inspect(info, digest, pid_hint).map(|mut c| {
            c.runtime = self.kind;
            c
        });
        Ok(Some((found, size)))
    }

    /// The manifest digest from the image's RepoDigests (`name@sha256:…`);
    /// `None` for images that never came from a registry (`docker import`).
    async fn image_digest(&self, image_id: &str) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Image {
            #[serde(rename = "RepoDigests")]
            repo_digests: Option<Vec<String>>,
        }
        if !path_safe(image_id) {
            return None;
        }
        let (image, _) = self
            .api
            .get_json::<Image>(
                "inspect image",
                &format!("/images/{image_id}/json"),
                MAX_ANSWER,
            )
            .await
            .ok()??;
        image
            .repo_digests?
            .iter()
            .find_map(|d| d.split_once('@').map(|(_, digest)| digest.to_string()))
    }

    /// The ids of the running containers, at most [`MAX_CONTAINERS`] (warning once when more).
    async fn list_ids(&self) -> Result<Vec<String>, ContainerError> {
        let op = "list containers";
        let (status, body) = self.api.get(op, "/containers/json", MAX_LIST).await?;
        if !status.is_success() {
            return Err(ContainerError::Engine {
                runtime: self.kind,
                socket: self.socket.clone(),
                op,
                reason: format!("HTTP {status}"),
            });
        }
        let mut de = serde_json::Deserializer::from_slice(&body);
        let (ids, total) = CappedIds {
            max: MAX_CONTAINERS,
        }
        .deserialize(&mut de)
        .map_err(|e| ContainerError::Engine {
            runtime: self.kind,
            socket: self.socket.clone(),
            op,
            reason: format!("invalid answer: {e}"),
        })?;
        if total > ids.len() && !self.warned_cap.swap(true, Ordering::Relaxed) {
            eprintln!(
                "ig: warning: {} ({}) lists {total} running containers; only the first {} are used (the others are named when their processes show up)",
                self.kind,
                self.socket.display(),
                ids.len()
            );
        }
        Ok(ids)
    }
}

/// Rewrites podman's own container states in an inspection (`State.Status`) to Docker's, which
/// bollard's model accepts: podman 4.3's compatible API answers `configured`, `initialized` (not
/// started yet: Docker's `created`) and `stopped` (Docker's `exited`) as they are.
fn docker_state_terms(inspect: &mut serde_json::Value) {
    let Some(status) = inspect.get_mut("State").and_then(|s| s.get_mut("Status")) else {
        return;
    };
    let docker = match status.as_str() {
        Some("configured" | "initialized") => "created",
        Some("stopped" | "stopping") => "exited",
        Some("unknown") => "",
        _ => return,
    };
    *status = serde_json::Value::String(docker.to_string());
}

/// A running container from `docker inspect`; `None` when it is not
/// running or its init process is already gone.
fn container_from_inspect(
    info: ContainerInspectResponse,
    image_digest: Option<String>,
    pid_hint: Option<u32>,
) -> Option<Container> {
    let state = info.state.as_ref()?;
    let pid = state
        .pid
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p != 0);
    let starting = matches!(
        state.status,
        Some(ContainerStateStatusEnum::CREATED | ContainerStateStatusEnum::RUNNING)
    );
    let pid = pid.or(pid_hint.filter(|_| starting))?;
    let mntns = procfs::mntns_key_of(pid).ok()?;
    describe_inspect(info, image_digest, pid, mntns)
}

/// Any container `docker inspect` knows, running or not (mount namespace 0 then, and pid 0
/// once Docker saw it stop).
pub fn describe_inspect(
    info: ContainerInspectResponse,
    image_digest: Option<String>,
    pid: u32,
    mntns: MntnsKey,
) -> Option<Container> {
    let state = info.state?;
    let config = info.config.unwrap_or_default();
    let labels: BTreeMap<String, String> = config.labels.unwrap_or_default().into_iter().collect();
    Some(Container {
        id: info.id?,
        name: info
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        runtime: RuntimeKind::Docker,
        image_name: config.image.unwrap_or_default(),
        image_digest,
        pid,
        mntns_id: mntns.inum,
        mntns_nsid: mntns.nsid,
        k8s: K8sMeta::from_labels(&labels),
        labels,
        started_at: state.started_at.as_deref().and_then(parse_rfc3339),
        containerd_namespace: None,
    })
}

impl RuntimeClient for DockerClient {
    fn kind(&self) -> RuntimeKind {
        self.kind
    }

    fn socket_path(&self) -> &Path {
        &self.socket
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Container>, ContainerError>> {
        async move {
            let ids = self.list_ids().await?;
            let budget = AtomicUsize::new(LIST_BUDGET);
            // Bounded concurrency; the first error ends the listing (the rest is dropped).
            // A container that stopped between list and inspect is simply gone.
            let found: Vec<Option<Container>> = futures_util::stream::iter(ids)
                .map(|id| {
                    let budget = &budget;
                    async move {
                        let Some((c, size)) = self.inspect_sized(&id, None).await? else {
                            return Ok(None);
                        };
                        let left = budget.load(Ordering::Relaxed);
                        if size > left {
                            return Err(ContainerError::TooLarge {
                                runtime: self.kind,
                                socket: self.socket.clone(),
                                op: "inspect the listed containers",
                                limit: LIST_BUDGET,
                            });
                        }
                        budget.fetch_sub(size, Ordering::Relaxed);
                        Ok(c)
                    }
                })
                .buffer_unordered(INSPECT_CONCURRENCY)
                .try_collect()
                .await?;
            Ok(found.into_iter().flatten().collect())
        }
        .boxed()
    }

    fn inspect<'a>(
        &'a self,
        id: &'a str,
        _namespace: Option<&'a str>,
        pid_hint: Option<u32>,
    ) -> BoxFuture<'a, Result<Option<Container>, ContainerError>> {
        self.inspect_running(id, pid_hint).boxed()
    }

    fn describe<'a>(
        &'a self,
        id: &'a str,
        _namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<Container>, ContainerError>> {
        async move {
            let Some((info, _)) = self.inspect_raw(id).await? else {
                return Ok(None);
            };
            let pid = info
                .state
                .as_ref()
                .and_then(|s| s.pid)
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0);
            Ok(
                describe_inspect(info, None, pid, MntnsKey::default()).map(|mut c| {
                    c.runtime = self.kind;
                    c
                }),
            )
        }
        .boxed()
    }

    fn events(&self) -> BoxStream<'static, Result<RuntimeEvent, ContainerError>> {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                vec![
                    "start".to_string(),
                    "die".to_string(),
                    // Docker's removal; podman's is `remove`.
                    match self.kind {
                        RuntimeKind::Podman => "remove".to_string(),
                        _ => "destroy".to_string(),
                    },
                ],
            ),
        ]);
        let end_socket = self.socket.clone();
        let kind = self.kind;
        // The request is only sent when the stream is first polled, after the caller's list may
        // have been taken: events since a second ago are replayed, so a container that starts
        // (and is maybe gone) in between is still seen. Replays are harmless: events are
        // applied idempotently.
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().saturating_sub(1))
            .unwrap_or(0);
        let filters = serde_json::to_string(&filters).unwrap_or_default();
        let query: String = url_encode(&filters);
        self.api
            .json_lines::<EventMessage>(
                "event stream",
                format!("/events?since={since}&filters={query}"),
            )
            .filter_map(move |msg| async move {
                match msg {
                    Err(e) => Some(Err(e)),
                    Ok(msg) => {
                        let actor = msg.actor?;
                        let id = actor.id?;
                        let attr =
                            |k: &str| actor.attributes.as_ref().and_then(|a| a.get(k)).cloned();
                        match msg.action.as_deref()? {
                            "start" => Some(Ok(RuntimeEvent::Started {
                                namespace: None,
                                name: attr("name"),
                                image: attr("image"),
                                pid: None,
                                id,
                            })),
                            "die" | "destroy" | "remove" => Some(Ok(RuntimeEvent::Stopped {
                                namespace: None,
                                id,
                            })),
                            _ => None,
                        }
                    }
                }
            })
            .chain(futures_util::stream::once(async move {
                Err(ContainerError::StreamEnded {
                    runtime: kind,
                    socket: end_socket,
                })
            }))
            .boxed()
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_states_become_docker_states() {
        for (podman, docker) in [
            ("initialized", Some(ContainerStateStatusEnum::CREATED)),
            ("configured", Some(ContainerStateStatusEnum::CREATED)),
            ("stopped", Some(ContainerStateStatusEnum::EXITED)),
            ("running", Some(ContainerStateStatusEnum::RUNNING)),
            ("exited", Some(ContainerStateStatusEnum::EXITED)),
        ] {
            let mut raw = serde_json::json!({"Id": "a", "State": {"Status": podman, "Pid": 0}});
            docker_state_terms(&mut raw);
            let info: ContainerInspectResponse = serde_json::from_value(raw).unwrap();
            assert_eq!(info.state.unwrap().status, docker, "{podman}");
        }
        // No state at all is left alone.
        let mut raw = serde_json::json!({"Id": "a"});
        docker_state_terms(&mut raw);
        assert_eq!(raw, serde_json::json!({"Id": "a"}));
    }
}
