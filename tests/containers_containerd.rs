//! containerd: every namespace, Kubernetes labels, events, resolve_pid,
//! and Docker's own namespace hidden when Docker is used too.

mod containers_common;

use anyhow::{Context, Result};
use containers_common::containers::{
    ContainerCollection, ContainerEvent, RuntimeConfig, RuntimeKind,
};
use containers_common::*;

fn containerd_only(sock: &str) -> Vec<RuntimeConfig> {
    vec![RuntimeConfig::new(RuntimeKind::Containerd)
        .socket(sock)
        .explicit(true)]
}

#[tokio::test]
async fn lists_containers_of_every_namespace() -> Result<()> {
    let sock = setup();
    let k8s_id = unique("ig-k8s");
    let k8s = CtrContainer::run(
        &sock,
        "k8s.io",
        &k8s_id,
        &[
            ("io.kubernetes.pod.name", "p"),
            ("io.kubernetes.pod.namespace", "team-a"),
            ("io.kubernetes.container.name", "web"),
        ],
    )?;
    let plain_id = unique("ig-plain");
    let plain = CtrContainer::run(&sock, "default", &plain_id, &[("team", "ig")])?;

    let (coll, warnings) = ContainerCollection::start(containerd_only(&sock)).await?;
    assert!(warnings.is_empty(), "{warnings:?}");
    let all = coll.all();

    let c = all
        .iter()
        .find(|c| c.id == k8s_id)
        .context("k8s.io container not listed")?;
    assert_eq!(c.runtime, RuntimeKind::Containerd);
    assert_eq!(c.runtime.as_str(), "containerd");
    assert_eq!(c.containerd_namespace.as_deref(), Some("k8s.io"));
    assert_eq!(c.name, "web");
    assert_eq!(c.k8s.pod_name, "p");
    assert_eq!(c.k8s.namespace, "team-a");
    assert_eq!(c.k8s.container_name, "web");
    assert_eq!(c.image_name, CTR_IMAGE);
    assert!(
        c.image_digest
            .as_deref()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{:?}",
        c.image_digest
    );
    assert_eq!(c.pid, k8s.pid()?);
    assert_eq!(c.mntns_id, mntns_of(c.pid)?);
    assert!(c.started_at.is_some());

    let p = all
        .iter()
        .find(|c| c.id == plain_id)
        .context("default container not listed")?;
    assert_eq!(p.containerd_namespace.as_deref(), Some("default"));
    assert_eq!(p.name, plain_id);
    assert!(p.k8s.is_empty());
    assert_eq!(p.labels.get("team").map(String::as_str), Some("ig"));
    assert_eq!(p.pid, plain.pid()?);
    assert_eq!(
        coll.lookup_mntns(p.mntns_key()).map(|c| c.id.clone()),
        Some(plain_id)
    );
    Ok(())
}

#[tokio::test]
async fn added_and_removed_events_follow_containerd() -> Result<()> {
    let sock = setup();
    let (coll, _) = ContainerCollection::start(containerd_only(&sock)).await?;
    let mut rx = coll.subscribe();
    let id = unique("ig-ctr-ev");
    let c = CtrContainer::run(&sock, "default", &id, &[])?;

    let ev = wait_event(
        &mut rx,
        20,
        |e| matches!(e, ContainerEvent::Added(x) if x.id == id),
    )
    .await?;
    let ContainerEvent::Added(added) = ev else {
        unreachable!()
    };
    assert_eq!(added.pid, c.pid()?);
    assert_eq!(added.containerd_namespace.as_deref(), Some("default"));

    c.remove()?;
    wait_event(&mut rx, 20, removed_id(&id)).await?;
    assert!(coll.all().iter().all(|x| x.id != id));
    assert_eq!(
        coll.lookup_mntns(added.mntns_key()).map(|c| c.id.clone()),
        Some(id)
    );
    Ok(())
}

#[tokio::test]
async fn resolve_pid_of_a_ctr_task() -> Result<()> {
    let sock = setup();
    let (coll, _) = ContainerCollection::start(containerd_only(&sock)).await?;
    let id = unique("ig-ctr-res");
    let c = CtrContainer::run(&sock, "k8s.io", &id, &[("io.kubernetes.pod.name", "rp")])?;
    let pid = c.pid()?;
    let resolved = coll
        .resolve_pid(pid)
        .await
        .context("resolve_pid found nothing")?;
    assert_eq!(resolved.id, id);
    assert_eq!(resolved.containerd_namespace.as_deref(), Some("k8s.io"));
    assert_eq!(resolved.k8s.pod_name, "rp");
    assert_eq!(resolved.mntns_id, mntns_of(pid)?);
    Ok(())
}

/// Pointed at dockerd's own containerd, the `moby` namespace holds the
/// Docker containers: hidden when Docker is used too, so none is listed
/// twice; listed (as containerd containers) otherwise.
#[tokio::test]
async fn docker_namespace_hidden_when_docker_is_used() -> Result<()> {
    setup();
    let docker_ctrd = "/var/run/docker/containerd/containerd.sock";
    let name = unique("ig-moby");
    let d = DockerContainer::run(&name, &[])?;

    let both = vec![
        RuntimeConfig::new(RuntimeKind::Docker).explicit(true),
        RuntimeConfig::new(RuntimeKind::Containerd)
            .socket(docker_ctrd)
            .explicit(true),
    ];
    let (coll, warnings) = ContainerCollection::start(both).await?;
    assert!(warnings.is_empty(), "{warnings:?}");
    let same: Vec<_> = coll.all().into_iter().filter(|c| c.id == d.id).collect();
    assert_eq!(same.len(), 1, "{same:?}");
    assert_eq!(same[0].runtime, RuntimeKind::Docker);
    let pid = d.pid()?;
    assert_eq!(
        coll.resolve_pid(pid).await.map(|c| c.runtime),
        Some(RuntimeKind::Docker)
    );

    let (alone, _) = ContainerCollection::start(containerd_only(docker_ctrd)).await?;
    let c = alone
        .all()
        .into_iter()
        .find(|c| c.id == d.id)
        .context("moby container not listed by containerd alone")?;
    assert_eq!(c.containerd_namespace.as_deref(), Some("moby"));
    assert_eq!(c.pid, pid);
    Ok(())
}
