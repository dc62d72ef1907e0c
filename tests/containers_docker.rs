//! Docker: listing, events, resolve_pid, against the real daemon.

mod containers_common;

use std::time::Duration;

use anyhow::{Context, Result};
use containers_common::containers::{
    ContainerCollection, ContainerEvent, RuntimeConfig, RuntimeKind,
};
use containers_common::*;

fn docker_only() -> Vec<RuntimeConfig> {
    vec![RuntimeConfig::new(RuntimeKind::Docker).explicit(true)]
}

#[tokio::test]
async fn lists_running_container_with_its_identity() -> Result<()> {
    setup();
    let name = unique("ig-list");
    let c = DockerContainer::run(
        &name,
        &[
            "--label",
            "team=ig",
            "--label",
            "io.kubernetes.pod.name=pod-a",
            "--label",
            "io.kubernetes.pod.namespace=ns-a",
        ],
    )?;
    let pid = c.pid()?;

    let (coll, warnings) = ContainerCollection::start(docker_only()).await?;
    assert!(warnings.is_empty(), "{warnings:?}");
    let all = coll.all();
    let found = find(&all, &name).context("container not listed")?;
    assert_eq!(found.id, c.id);
    assert_eq!(found.runtime, RuntimeKind::Docker);
    assert_eq!(found.runtime.as_str(), "docker");
    assert_eq!(found.pid, pid);
    assert_eq!(found.mntns_id, mntns_of(pid)?);
    // The namespace's never-reused id, as NS_GET_MNTNS_ID gives it (this kernel has it).
    assert_eq!(found.mntns_key(), containers::procfs::mntns_key_of(pid)?);
    assert_ne!(found.mntns_nsid, 0);
    assert_ne!(found.mntns_id, mntns_of(std::process::id())?);
    assert_eq!(found.image_name, IMAGE);
    // Imported, never pushed: no repo digest.
    assert_eq!(found.image_digest, None);
    assert_eq!(found.labels.get("team").map(String::as_str), Some("ig"));
    assert_eq!(found.k8s.pod_name, "pod-a");
    assert_eq!(found.k8s.namespace, "ns-a");
    assert_eq!(found.k8s.container_name, "");
    assert_eq!(found.containerd_namespace, None);
    let started = found.started_at.context("no start time")?;
    let age = std::time::SystemTime::now().duration_since(started)?;
    assert!(age < Duration::from_secs(120), "started {age:?} ago");

    let by_mntns = coll
        .lookup_mntns(found.mntns_key())
        .context("lookup_mntns")?;
    assert_eq!(by_mntns.id, c.id);
    assert_eq!(coll.by_name(&name).len(), 1);
    assert!(coll.by_name("no-such-container").is_empty());
    Ok(())
}

#[tokio::test]
async fn added_and_removed_events_follow_docker() -> Result<()> {
    setup();
    let (coll, _) = ContainerCollection::start(docker_only()).await?;
    let mut rx = coll.subscribe();
    let name = unique("ig-events");
    let c = DockerContainer::run(&name, &[])?;

    let ev = wait_event(&mut rx, 20, added_named(&name)).await?;
    let ContainerEvent::Added(added) = ev else {
        unreachable!()
    };
    assert_eq!(added.id, c.id);
    assert_eq!(added.pid, c.pid()?);
    assert_eq!(added.mntns_id, mntns_of(added.pid)?);
    assert_eq!(coll.by_name(&name).len(), 1);

    c.remove()?;
    wait_event(&mut rx, 20, removed_id(&c.id)).await?;
    assert!(coll.by_name(&name).is_empty(), "still live after rm -f");
    assert!(coll.all().iter().all(|x| x.id != c.id));
    // Recently gone: still named by its mount namespace.
    let gone = coll
        .lookup_mntns(added.mntns_key())
        .context("forgotten right away")?;
    assert_eq!(gone.name, name);
    Ok(())
}

/// The container's first process exists (runc init, then the entrypoint)
/// before Docker announces the container: resolve it from the pid alone.
#[tokio::test]
async fn resolve_pid_of_a_container_just_starting() -> Result<()> {
    setup();
    let (coll, _) = ContainerCollection::start(docker_only()).await?;
    let mut rx = coll.subscribe();
    let name = unique("ig-resolve");
    let id = run(
        "docker",
        &["create", "--name", &name, IMAGE, "sleep", "300"],
    )?;
    let guard = DockerContainer {
        name: name.clone(),
        id: id.clone(),
    };
    let starter = std::thread::spawn({
        let id = id.clone();
        move || run("docker", &["start", &id])
    });
    // The first pid in the container's cgroup, as early as /proc shows it.
    let pid = eventually(20, || pids_in_cgroup(&id).into_iter().min()).await?;
    let known_before = containers::procfs::mntns_key_of(pid)
        .ok()
        .and_then(|m| coll.lookup_mntns(m))
        .is_some();
    // While runc still sets the namespaces up, the pid may not be in the container's mount
    // namespace yet and resolve_pid rightly answers nothing: ask again, as ig run does.
    // The lowest pid is taken again each time: the first one seen can be one of runc's
    // short-lived setup stages (`runc:[1:CHILD]`), which exits and would be asked about forever.
    let mut resolved = None;
    for _ in 0..400 {
        let pid = pids_in_cgroup(&id).into_iter().min().unwrap_or(pid);
        resolved = coll.resolve_pid(pid).await;
        if resolved.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let resolved = resolved.context("resolve_pid found nothing")?;
    eprintln!("resolve_pid: container known before the call: {known_before}");
    assert_eq!(resolved.id, id);
    assert_eq!(resolved.name, name);
    assert_eq!(resolved.runtime, RuntimeKind::Docker);
    starter
        .join()
        .map_err(|_| anyhow::anyhow!("docker start panicked"))??;

    // Exactly one Added for it, whichever path (resolve or event) came first.
    wait_event(&mut rx, 10, added_named(&name)).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Ok(ev) = rx.try_recv() {
        if let ContainerEvent::Added(c) = ev {
            assert_ne!(c.name, name, "second Added for the same container");
        }
    }
    let live = coll.by_name(&name);
    assert_eq!(live.len(), 1);
    // Once running, the record has the real init pid and its namespace.
    let init = guard.pid()?;
    assert_eq!(live[0].mntns_id, mntns_of(init)?);
    assert_eq!(coll.resolve_pid(init).await.map(|c| c.id.clone()), Some(id));
    Ok(())
}

#[tokio::test]
async fn host_process_resolves_to_nothing() -> Result<()> {
    setup();
    let (coll, _) = ContainerCollection::start(docker_only()).await?;
    assert!(coll.resolve_pid(std::process::id()).await.is_none());
    assert!(coll.resolve_pid(1).await.is_none());
    assert!(coll.resolve_pid(u32::MAX).await.is_none());
    assert!(coll
        .lookup_mntns(containers::procfs::mntns_key_of(std::process::id())?)
        .is_none());
    Ok(())
}
