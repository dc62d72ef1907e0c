//! The `Container` record every other part of `ig` sees, and its runtime kind.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use super::error::ContainerError;
use super::mntns::MntnsKey;

/// Label keys the kubelet (through CRI) puts on every container.
pub const LABEL_K8S_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_K8S_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_K8S_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// A container runtime `ig` can talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuntimeKind {
    Docker,
    Containerd,
    /// podman through its Docker-compatible API (`podman system service`).
    Podman,
}

impl RuntimeKind {
    /// Every runtime this build knows, in the order they are connected.
    pub const ALL: [RuntimeKind; 3] = [
        RuntimeKind::Docker,
        RuntimeKind::Containerd,
        RuntimeKind::Podman,
    ];

    /// The name used on the command line and in output (`runtime.runtimeName`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Containerd => "containerd",
            RuntimeKind::Podman => "podman",
        }
    }

    /// The socket the runtime listens on by default.
    pub fn default_socket(self) -> &'static str {
        self.default_sockets()[0]
    }

    /// Where the runtime's socket usually is, the default first: containerd's own, then k3s's
    /// and microk8s's containerd.
    pub fn default_sockets(self) -> &'static [&'static str] {
        match self {
            RuntimeKind::Docker => &["/var/run/docker.sock"],
            RuntimeKind::Containerd => &[
                "/run/containerd/containerd.sock",
                "/run/k3s/containerd/containerd.sock",
                "/var/snap/microk8s/common/run/containerd.sock",
            ],
            // The root service's socket (`podman system service`, podman.socket).
            RuntimeKind::Podman => &["/run/podman/podman.sock"],
        }
    }

    /// Whether a runtime left out by default is simply not used when its socket is missing (no
    /// notice): podman is installed on fewer machines than Docker and containerd, and a run
    /// should not warn about it on each of the others.
    pub fn quiet_when_missing(self) -> bool {
        matches!(self, RuntimeKind::Podman)
    }

    /// The first of [`Self::default_sockets`] that exists, under `HOST_ROOT` when it is set
    /// (see [`crate::hostroot`]); the default one when none does.
    pub fn default_socket_path(self) -> std::path::PathBuf {
        let sockets = self.default_sockets();
        sockets
            .iter()
            .map(crate::hostroot::host_path)
            .find(|p| p.exists())
            .unwrap_or_else(|| crate::hostroot::host_path(sockets[0]))
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RuntimeKind {
    type Err = ContainerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuntimeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| ContainerError::UnknownRuntime(s.to_string()))
    }
}

/// Kubernetes metadata of a container; empty strings when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sMeta {
    pub namespace: String,
    pub pod_name: String,
    pub container_name: String,
}

impl K8sMeta {
    /// Reads the `io.kubernetes.*` labels.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        K8sMeta {
            namespace: get(LABEL_K8S_NAMESPACE),
            pod_name: get(LABEL_K8S_POD_NAME),
            container_name: get(LABEL_K8S_CONTAINER_NAME),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.namespace.is_empty() && self.pod_name.is_empty() && self.container_name.is_empty()
    }
}

/// A running container as its runtime describes it, plus its identity in
/// the kernel: its mount namespace's inode (`mntns_id`, `/proc/<pid>/ns/mnt`,
/// `task->nsproxy->mnt_ns->ns.inum`) and id (`mntns_nsid`, see [`super::mntns`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Runtime id (Docker: 64 hex digits; containerd: any string).
    pub id: String,
    /// Docker: name without the leading `/`. containerd: the Kubernetes
    /// container name or `nerdctl/name` label when present, else the id.
    pub name: String,
    pub runtime: RuntimeKind,
    /// The image as the user named it (`ig-test/busybox`, `docker.io/library/nginx:1`).
    pub image_name: String,
    /// `sha256:…` of the image manifest when the runtime knows it.
    pub image_digest: Option<String>,
    /// Init process of the container, in the host pid namespace.
    pub pid: u32,
    pub mntns_id: u64,
    /// `NS_GET_MNTNS_ID` of the namespace; 0 when unknown (a kernel without the ioctl, or a
    /// container seen only after it exited).
    pub mntns_nsid: u64,
    pub labels: BTreeMap<String, String>,
    pub started_at: Option<SystemTime>,
    pub k8s: K8sMeta,
    /// containerd namespace (`k8s.io`, `default`, …); `None` for Docker.
    pub containerd_namespace: Option<String>,
}

impl Container {
    /// The mount namespace, inode and id.
    pub fn mntns_key(&self) -> MntnsKey {
        MntnsKey::new(self.mntns_id, self.mntns_nsid)
    }

    /// What is known of a container that exited before it could be inspected: its init pid
    /// when the runtime's event carried it (containerd's does), else 0.
    pub fn exited(
        runtime: RuntimeKind,
        id: &str,
        name: &str,
        image: Option<&str>,
        pid: Option<u32>,
    ) -> Self {
        Container {
            id: id.to_string(),
            name: name.to_string(),
            runtime,
            image_name: image.unwrap_or_default().to_string(),
            image_digest: None,
            pid: pid.unwrap_or(0),
            mntns_id: 0,
            mntns_nsid: 0,
            labels: BTreeMap::new(),
            started_at: None,
            k8s: K8sMeta::default(),
            containerd_namespace: None,
        }
    }
}
