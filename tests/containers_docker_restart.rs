//! dockerd restarted under a running collection: the watcher reconnects,
//! re-lists, and sees containers started afterwards. Alone in its test
//! binary because it stops the daemon the other tests use.

mod containers_common;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use containers_common::containers::{ContainerCollection, RuntimeConfig, RuntimeKind};
use containers_common::*;

fn dockerd_pid() -> Result<i32> {
    Ok(std::fs::read_to_string("/var/run/docker.pid")
        .context("no /var/run/docker.pid")?
        .trim()
        .parse()?)
}

/// SIGTERM by default; `IG_TEST_DOCKERD_SIGNAL=KILL` simulates a crash.
async fn stop_dockerd() -> Result<()> {
    let pid = dockerd_pid()?;
    let signal = std::env::var("IG_TEST_DOCKERD_SIGNAL").unwrap_or_else(|_| "TERM".into());
    run("kill", &[&format!("-{signal}"), &pid.to_string()])?;
    for _ in 0..300 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("dockerd {pid} did not exit within 30s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sees_containers_after_dockerd_restart() -> Result<()> {
    setup();
    let before = DockerContainer::run(&unique("ig-before"), &[])?;
    let (coll, _) =
        ContainerCollection::start(vec![RuntimeConfig::new(RuntimeKind::Docker).explicit(true)])
            .await?;
    assert_eq!(coll.by_name(&before.name).len(), 1);

    stop_dockerd().await?;
    // The collection keeps answering while the daemon is away.
    let _ = coll.all();
    tokio::time::sleep(Duration::from_secs(1)).await;
    setup_script("docker.sh", &[])?;

    // The re-list agrees with the daemon about the container from before
    // (stopped on shutdown without live-restore, or still running).
    let running = run(
        "docker",
        &["inspect", "-f", "{{.State.Running}}", &before.id],
    )? == "true";
    eventually(30, || {
        (coll.by_name(&before.name).len() == usize::from(running)).then_some(())
    })
    .await?;
    eprintln!("container from before the restart still running: {running}");

    let mut rx = coll.subscribe();
    let after = DockerContainer::run(&unique("ig-after"), &[])?;
    wait_event(&mut rx, 30, added_named(&after.name)).await?;
    let c = coll.by_name(&after.name);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].mntns_id, mntns_of(after.pid()?)?);
    Ok(())
}
