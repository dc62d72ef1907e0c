//! What the container runtimes answer: Docker's JSON (inspect, list, events, as bollard parses
//! them, then our conversion), containerd's event envelopes (protobuf), Docker's timestamps,
//! and `/proc/<pid>/cgroup`. The first byte chooses which.
#![no_main]

use bollard::models::{ContainerInspectResponse, ContainerSummary, EventMessage};
use containerd_client::types::Envelope;
use ig::containers::parse::{containerd_event, docker_container, parse_rfc3339};
use ig::containers::{procfs, MntnsKey};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(info) = serde_json::from_slice::<ContainerInspectResponse>(data) {
                let _ = docker_container(info, Some("sha256:x".into()), 1, MntnsKey::default());
            }
        }
        1 => {
            let _ = serde_json::from_slice::<Vec<ContainerSummary>>(data);
        }
        2 => {
            let _ = serde_json::from_slice::<EventMessage>(data);
        }
        3 => {
            if let Ok(env) = Envelope::decode(data) {
                let _ = containerd_event(env);
            }
        }
        4 => {
            let _ = parse_rfc3339(&String::from_utf8_lossy(data));
        }
        _ => {
            let _ = procfs::parse_cgroup(&String::from_utf8_lossy(data));
        }
    }
});
