//! Container enrichment: the `runtime.*` and `k8s.*` fields of every event that carries a mount
//! namespace id.

use crate::containers::Container;
use crate::event::{Align, Event, FieldDef, Schema, Value};

const FIELDS: [(&str, usize, bool, &str); 10] = [
    ("runtime.containerName", 30, false, "Name of the container"),
    ("runtime.containerId", 13, true, "Id of the container"),
    (
        "runtime.containerImageName",
        30,
        true,
        "Image of the container",
    ),
    (
        "runtime.runtimeName",
        10,
        true,
        "Container runtime (docker, containerd, podman)",
    ),
    (
        "runtime.containerPid",
        8,
        true,
        "Pid of the container's init process",
    ),
    ("k8s.namespace", 20, true, "Kubernetes namespace"),
    ("k8s.podName", 30, true, "Kubernetes pod name"),
    ("k8s.containerName", 30, true, "Kubernetes container name"),
    (
        "runtime.containerImageDigest",
        30,
        true,
        "Digest of the container's image manifest (sha256:...) where the runtime knows it: containerd's image target, Docker's RepoDigests (empty for an image never pulled from a registry)",
    ),
    (
        "runtime.containerStartedAt",
        30,
        true,
        "When the container started (Docker's State.StartedAt; containerd: its init process's start), RFC 3339 UTC",
    ),
];

/// Where the container fields sit in a schema.
#[derive(Debug, Clone, Copy)]
pub struct ContainerFields {
    first: usize,
}

impl ContainerFields {
    /// For events without a mount namespace: nothing to fill.
    pub const NONE: ContainerFields = ContainerFields { first: usize::MAX };

    /// Adds the fields (only `runtime.containerName` shown by default).
    pub fn add(schema: &mut Schema) -> Self {
        let first = schema.fields.len();
        for (name, width, hidden, description) in FIELDS {
            let mut f = FieldDef::new(name);
            f.width = width;
            f.hidden = hidden;
            f.description = description.to_string();
            if name == "runtime.containerPid" {
                f.align = Align::Right;
            }
            schema.push(f);
        }
        ContainerFields { first }
    }

    pub fn fill(&self, event: &mut Event, c: &Container) {
        if self.first == usize::MAX {
            return;
        }
        let values = [
            Value::Str(c.name.clone()),
            Value::Str(c.id.clone()),
            Value::Str(c.image_name.clone()),
            Value::Str(c.runtime.as_str().to_string()),
            Value::U64(c.pid as u64),
            Value::Str(c.k8s.namespace.clone()),
            Value::Str(c.k8s.pod_name.clone()),
            Value::Str(c.k8s.container_name.clone()),
            Value::Str(c.image_digest.clone().unwrap_or_default()),
            Value::Str(
                c.started_at
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| super::enrich::format_wall_ns(d.as_nanos() as i128))
                    .unwrap_or_default(),
            ),
        ];
        for (i, v) in values.into_iter().enumerate() {
            event.set(self.first + i, v);
        }
    }

    /// Host processes: empty container fields.
    pub fn clear(&self, event: &mut Event) {
        if self.first == usize::MAX {
            return;
        }
        for i in 0..FIELDS.len() {
            let v = if i == 4 {
                Value::U64(0)
            } else {
                Value::Str(String::new())
            };
            event.set(self.first + i, v);
        }
    }
}
