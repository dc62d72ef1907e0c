//! containerd through its gRPC socket (containerd-client), across every
//! namespace (`k8s.io`, `default`, …), selected per call with the
//! `containerd-namespace` metadata header.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use containerd_client::events::{ContainerDelete, TaskDelete, TaskExit, TaskStart};
use containerd_client::services::v1::{
    containers_client::ContainersClient, events_client::EventsClient, images_client::ImagesClient,
    namespaces_client::NamespacesClient, tasks_client::TasksClient, version_client::VersionClient,
    Container as CtrContainer, GetContainerRequest, GetImageRequest, GetRequest,
    ListContainersRequest, ListNamespacesRequest, ListTasksRequest, SubscribeRequest,
};
use containerd_client::types::v1::{Process, Status};
use containerd_client::types::Envelope;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tonic::transport::Channel;
use tonic::{Code, Request};

use super::container::{Container, K8sMeta, RuntimeKind, LABEL_K8S_CONTAINER_NAME};
use super::error::ContainerError;
use super::mntns::MntnsKey;
use super::procfs;
use super::runtime::{RuntimeClient, RuntimeEvent};

/// The containerd namespace dockerd keeps its containers in.
pub const DOCKER_NAMESPACE: &str = "moby";

/// Label nerdctl puts the container name in.
const LABEL_NERDCTL_NAME: &str = "nerdctl/name";

const TOPICS: [&str; 4] = [
    "/tasks/start",
    "/tasks/exit",
    "/tasks/delete",
    "/containers/delete",
];

pub struct ContainerdClient {
    channel: Channel,
    socket: PathBuf,
    /// Namespaces not listed nor watched (`moby` when Docker is used too).
    hidden_namespaces: Vec<String>,
}

impl ContainerdClient {
    /// Connects and asks the daemon its version.
    pub async fn connect(
        socket: &Path,
        hidden_namespaces: Vec<String>,
    ) -> Result<Self, ContainerError> {
        let channel = containerd_client::connect(socket).await.map_err(|e| {
            ContainerError::ContainerdConnect {
                socket: socket.to_path_buf(),
                source: Box::new(e),
            }
        })?;
        VersionClient::new(channel.clone())
            .version(())
            .await
            .map_err(|e| ContainerError::containerd(socket, "version", e))?;
        Ok(ContainerdClient {
            channel,
            socket: socket.to_path_buf(),
            hidden_namespaces,
        })
    }

    fn err(&self, op: &'static str) -> impl Fn(tonic::Status) -> ContainerError + '_ {
        move |e| ContainerError::containerd(&self.socket, op, e)
    }

    /// A request carrying the `containerd-namespace` header.
    fn request<T>(&self, namespace: &str, message: T) -> Result<Request<T>, ContainerError> {
        let mut req = Request::new(message);
        let value = namespace
            .parse()
            .map_err(|_| ContainerError::BadNamespace {
                socket: self.socket.clone(),
                namespace: namespace.to_string(),
            })?;
        req.metadata_mut().insert("containerd-namespace", value);
        Ok(req)
    }

    async fn namespaces(&self) -> Result<Vec<String>, ContainerError> {
        let resp = NamespacesClient::new(self.channel.clone())
            .list(ListNamespacesRequest::default())
            .await
            .map_err(self.err("list namespaces"))?;
        Ok(resp
            .into_inner()
            .namespaces
            .into_iter()
            .map(|n| n.name)
            .filter(|n| !self.is_hidden(n))
            .collect())
    }

    fn is_hidden(&self, namespace: &str) -> bool {
        self.hidden_namespaces.iter().any(|h| h == namespace)
    }

    /// The running containers of one namespace, at most `max` (tonic bounds each answer to
    /// 4 MiB, its default decoding limit).
    async fn list_namespace(&self, ns: &str, max: usize) -> Result<Vec<Container>, ContainerError> {
        let tasks = TasksClient::new(self.channel.clone())
            .list(self.request(ns, ListTasksRequest::default())?)
            .await
            .map_err(self.err("list tasks"))?
            .into_inner()
            .tasks;
        // containerd 1.6 leaves `container_id` empty in task lists; the
        // init process's `id` is the container id.
        let live: HashMap<String, u32> = tasks
            .into_iter()
            .filter_map(|p| {
                let pid = live_pid(&p)?;
                let id = if p.container_id.is_empty() {
                    p.id
                } else {
                    p.container_id
                };
                Some((id, pid))
            })
            .collect();
        if live.is_empty() {
            return Ok(Vec::new());
        }
        let containers = ContainersClient::new(self.channel.clone())
            .list(self.request(ns, ListContainersRequest::default())?)
            .await
            .map_err(self.err("list containers"))?
            .into_inner()
            .containers;
        let mut digests: HashMap<String, Option<String>> = HashMap::new();
        let mut out = Vec::new();
        for c in containers {
            let Some(&pid) = live.get(&c.id) else {
                continue;
            };
            if out.len() >= max {
                eprintln!(
                    "ig: warning: containerd ({}) lists more than {} running containers; only the first are used (the others are named when their processes show up)",
                    self.socket.display(),
                    super::docker::MAX_CONTAINERS
                );
                break;
            }
            let digest = match digests.get(&c.image) {
                Some(d) => d.clone(),
                None => {
                    let d = self.image_digest(ns, &c.image).await;
                    digests.insert(c.image.clone(), d.clone());
                    d
                }
            };
            if let Some(container) = to_container(c, ns, pid, digest) {
                out.push(container);
            }
        }
        Ok(out)
    }

    async fn image_digest(&self, ns: &str, image: &str) -> Option<String> {
        if image.is_empty() {
            return None;
        }
        let req = self
            .request(
                ns,
                GetImageRequest {
                    name: image.to_string(),
                },
            )
            .ok()?;
        let resp = ImagesClient::new(self.channel.clone())
            .get(req)
            .await
            .ok()?;
        let digest = resp.into_inner().image?.target?.digest;
        (!digest.is_empty()).then_some(digest)
    }

    async fn inspect_in(
        &self,
        ns: &str,
        id: &str,
        pid_hint: Option<u32>,
    ) -> Result<Option<Container>, ContainerError> {
        let get = GetContainerRequest { id: id.to_string() };
        let container = match ContainersClient::new(self.channel.clone())
            .get(self.request(ns, get)?)
            .await
        {
            Ok(r) => r.into_inner().container,
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(ContainerError::containerd(&self.socket, "get container", s)),
        };
        let Some(container) = container else {
            return Ok(None);
        };
        let task = GetRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        let process = match TasksClient::new(self.channel.clone())
            .get(self.request(ns, task)?)
            .await
        {
            Ok(r) => r.into_inner().process,
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(ContainerError::containerd(&self.socket, "get task", s)),
        };
        let pid = match &process {
            Some(p) => live_pid(p),
            // Task not created yet.
            None => pid_hint,
        };
        let Some(pid) = pid else { return Ok(None) };
        let digest = self.image_digest(ns, &container.image).await;
        Ok(to_container(container, ns, pid, digest))
    }
}

impl ContainerdClient {
    /// The namespace given (none when Docker owns it), or every namespace.
    async fn namespaces_to_search(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<String>, ContainerError> {
        Ok(match namespace {
            Some(ns) if self.is_hidden(ns) => Vec::new(),
            Some(ns) => vec![ns.to_string()],
            None => self.namespaces().await?,
        })
    }

    async fn describe_in(&self, ns: &str, id: &str) -> Result<Option<Container>, ContainerError> {
        let get = GetContainerRequest { id: id.to_string() };
        match ContainersClient::new(self.channel.clone())
            .get(self.request(ns, get)?)
            .await
        {
            Ok(r) => Ok(r
                .into_inner()
                .container
                .map(|c| describe_container(c, ns, 0, MntnsKey::default(), None))),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(ContainerError::containerd(&self.socket, "get container", s)),
        }
    }
}

/// The init pid of a task that has one and has not stopped.
fn live_pid(p: &Process) -> Option<u32> {
    let stopped = p.status == Status::Stopped as i32;
    (p.pid != 0 && !stopped).then_some(p.pid)
}

fn to_container(
    c: CtrContainer,
    ns: &str,
    pid: u32,
    image_digest: Option<String>,
) -> Option<Container> {
    let mntns = procfs::mntns_key_of(pid).ok()?;
    Some(describe_container(c, ns, pid, mntns, image_digest))
}

/// A container as containerd describes it; pid and mount namespace 0 when it has no process.
fn describe_container(
    c: CtrContainer,
    ns: &str,
    pid: u32,
    mntns: MntnsKey,
    image_digest: Option<String>,
) -> Container {
    let labels: BTreeMap<String, String> = c.labels.into_iter().collect();
    let name = labels
        .get(LABEL_K8S_CONTAINER_NAME)
        .or_else(|| labels.get(LABEL_NERDCTL_NAME))
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| c.id.clone());
    Container {
        id: c.id,
        name,
        runtime: RuntimeKind::Containerd,
        image_name: c.image,
        image_digest,
        pid,
        mntns_id: mntns.inum,
        mntns_nsid: mntns.nsid,
        k8s: K8sMeta::from_labels(&labels),
        labels,
        // containerd does not record when a task started; its init process does.
        started_at: if pid == 0 {
            None
        } else {
            procfs::process_start_time(pid)
        },
        containerd_namespace: Some(ns.to_string()),
    }
}

/// Decodes an envelope into the event the collection cares about.
pub fn to_event(env: Envelope) -> Option<RuntimeEvent> {
    let mut any = env.event?;
    // containerd sends type URLs without a '/', which prost's check needs.
    if !any.type_url.contains('/') {
        any.type_url.insert(0, '/');
    }
    let namespace = Some(env.namespace);
    let mut pid = None;
    let (started, id) = match env.topic.as_str() {
        "/tasks/start" => {
            let start = any.to_msg::<TaskStart>().ok()?;
            pid = Some(start.pid).filter(|p| *p != 0);
            (true, start.container_id)
        }
        "/tasks/exit" => {
            let exit = any.to_msg::<TaskExit>().ok()?;
            // An exec'd process exiting does not stop the container.
            if !exit.id.is_empty() && exit.id != exit.container_id {
                return None;
            }
            (false, exit.container_id)
        }
        "/tasks/delete" => {
            let delete = any.to_msg::<TaskDelete>().ok()?;
            if !delete.id.is_empty() && delete.id != delete.container_id {
                return None;
            }
            (false, delete.container_id)
        }
        "/containers/delete" => (false, any.to_msg::<ContainerDelete>().ok()?.id),
        _ => return None,
    };
    Some(if started {
        RuntimeEvent::Started {
            namespace,
            id,
            name: None,
            image: None,
            pid,
        }
    } else {
        RuntimeEvent::Stopped { namespace, id }
    })
}

impl RuntimeClient for ContainerdClient {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Containerd
    }

    fn socket_path(&self) -> &Path {
        &self.socket
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Container>, ContainerError>> {
        async move {
            let mut out = Vec::new();
            for ns in self.namespaces().await? {
                let max = super::docker::MAX_CONTAINERS.saturating_sub(out.len());
                out.extend(self.list_namespace(&ns, max).await?);
            }
            Ok(out)
        }
        .boxed()
    }

    fn describe<'a>(
        &'a self,
        id: &'a str,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<Container>, ContainerError>> {
        async move {
            let namespaces = self.namespaces_to_search(namespace).await?;
            for ns in namespaces {
                match self.describe_in(&ns, id).await {
                    Ok(Some(c)) => return Ok(Some(c)),
                    Ok(None) | Err(ContainerError::BadNamespace { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        }
        .boxed()
    }

    fn inspect<'a>(
        &'a self,
        id: &'a str,
        namespace: Option<&'a str>,
        pid_hint: Option<u32>,
    ) -> BoxFuture<'a, Result<Option<Container>, ContainerError>> {
        async move {
            let namespaces = self.namespaces_to_search(namespace).await?;
            for ns in namespaces {
                match self.inspect_in(&ns, id, pid_hint).await {
                    Ok(Some(c)) => return Ok(Some(c)),
                    Ok(None) | Err(ContainerError::BadNamespace { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        }
        .boxed()
    }

    fn events(&self) -> BoxStream<'static, Result<RuntimeEvent, ContainerError>> {
        let mut client = EventsClient::new(self.channel.clone());
        let socket = self.socket.clone();
        let hidden = self.hidden_namespaces.clone();
        let filters = TOPICS.iter().map(|t| format!("topic==\"{t}\"")).collect();
        async move {
            // containerd sends the response headers with the first event, so
            // this await lasts until something happens.
            let stream = match client.subscribe(SubscribeRequest { filters }).await {
                Ok(r) => r.into_inner(),
                Err(e) => {
                    let err = ContainerError::containerd(&socket, "subscribe", e);
                    return futures_util::stream::once(async move { Err(err) }).boxed();
                }
            };
            let end_socket = socket.clone();
            stream
                .filter_map(move |env| {
                    let socket = socket.clone();
                    let hidden = hidden.clone();
                    async move {
                        match env {
                            Err(e) => {
                                Some(Err(ContainerError::containerd(&socket, "event stream", e)))
                            }
                            Ok(env) if hidden.contains(&env.namespace) => None,
                            Ok(env) => to_event(env).map(Ok),
                        }
                    }
                })
                .chain(futures_util::stream::once(async move {
                    Err(ContainerError::StreamEnded {
                        runtime: RuntimeKind::Containerd,
                        socket: end_socket,
                    })
                }))
                .boxed()
        }
        .flatten_stream()
        .boxed()
    }
}
