//! Docker through its Engine API socket (bollard), with API version
//! negotiation (Debian's docker.io 20.10 speaks API 1.41).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bollard::container::ListContainersOptions;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use bollard::system::EventsOptions;
use bollard::Docker;
use futures_util::future::{join_all, BoxFuture};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};

use super::container::{Container, K8sMeta, RuntimeKind};
use super::error::ContainerError;
use super::mntns::MntnsKey;
use super::procfs;
use super::runtime::{RuntimeClient, RuntimeEvent, CONNECT_TIMEOUT};
use super::timestamp::parse_rfc3339;

pub struct DockerClient {
    docker: Docker,
    socket: PathBuf,
}

impl DockerClient {
    /// Connects, negotiates the API version and pings the daemon.
    pub async fn connect(socket: &Path) -> Result<Self, ContainerError> {
        let path = socket.to_string_lossy();
        let docker = Docker::connect_with_unix(
            &path,
            CONNECT_TIMEOUT.as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| ContainerError::docker(socket, "connect", e))?
        .negotiate_version()
        .await
        .map_err(|e| ContainerError::docker(socket, "version negotiation", e))?;
        docker
            .ping()
            .await
            .map_err(|e| ContainerError::docker(socket, "ping", e))?;
        Ok(DockerClient {
            docker,
            socket: socket.to_path_buf(),
        })
    }

    async fn inspect_running(
        &self,
        id: &str,
        pid_hint: Option<u32>,
    ) -> Result<Option<Container>, ContainerError> {
        let info = match self.docker.inspect_container(id, None).await {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(ContainerError::docker(&self.socket, "inspect container", e)),
        };
        let digest = match &info.image {
            Some(image_id) => self.image_digest(image_id).await,
            None => None,
        };
        Ok(container_from_inspect(info, digest, pid_hint))
    }

    /// The manifest digest from the image's RepoDigests (`name@sha256:…`);
    /// `None` for images that never came from a registry (`docker import`).
    async fn image_digest(&self, image_id: &str) -> Option<String> {
        let image = self.docker.inspect_image(image_id).await.ok()?;
        image
            .repo_digests?
            .iter()
            .find_map(|d| d.split_once('@').map(|(_, digest)| digest.to_string()))
    }
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
        RuntimeKind::Docker
    }

    fn socket_path(&self) -> &Path {
        &self.socket
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Container>, ContainerError>> {
        async move {
            let options = ListContainersOptions::<String> {
                all: false,
                ..Default::default()
            };
            let summaries = self
                .docker
                .list_containers(Some(options))
                .await
                .map_err(|e| ContainerError::docker(&self.socket, "list containers", e))?;
            let ids = summaries.into_iter().filter_map(|s| s.id);
            let inspected =
                join_all(ids.map(|id| async move { self.inspect_running(&id, None).await })).await;
            // A container that stopped between list and inspect is simply gone.
            let mut out = Vec::new();
            for r in inspected {
                if let Some(c) = r? {
                    out.push(c);
                }
            }
            Ok(out)
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
            match self.docker.inspect_container(id, None).await {
                Ok(info) => {
                    let pid = info
                        .state
                        .as_ref()
                        .and_then(|s| s.pid)
                        .and_then(|p| u32::try_from(p).ok())
                        .unwrap_or(0);
                    Ok(describe_inspect(info, None, pid, MntnsKey::default()))
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(None),
                Err(e) => Err(ContainerError::docker(&self.socket, "inspect container", e)),
            }
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
                    "destroy".to_string(),
                ],
            ),
        ]);
        let socket = self.socket.clone();
        let end_socket = self.socket.clone();
        // The request is only sent when the stream is first polled, after the caller's list may
        // have been taken: events since a second ago are replayed, so a container that starts
        // (and is maybe gone) in between is still seen. Replays are harmless: events are
        // applied idempotently.
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs().saturating_sub(1).to_string());
        self.docker
            .events(Some(EventsOptions::<String> {
                since,
                until: None,
                filters,
            }))
            .filter_map(move |msg| {
                let socket = socket.clone();
                async move {
                    match msg {
                        Err(e) => Some(Err(ContainerError::docker(&socket, "event stream", e))),
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
                                "die" | "destroy" => Some(Ok(RuntimeEvent::Stopped {
                                    namespace: None,
                                    id,
                                })),
                                _ => None,
                            }
                        }
                    }
                }
            })
            .chain(futures_util::stream::once(async move {
                Err(ContainerError::StreamEnded {
                    runtime: RuntimeKind::Docker,
                    socket: end_socket,
                })
            }))
            .boxed()
    }
}
