//! The test containerd restarted under a running collection: the watcher
//! reconnects and sees containers started afterwards. Uses the standalone
//! test containerd only (never a system one), alone in its test binary.

mod containers_common;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use containers_common::containers::{
    ContainerCollection, ContainerEvent, RuntimeConfig, RuntimeKind,
};
use containers_common::*;

const DIR: &str = "/run/ig-test-containerd";

fn standalone() -> Result<String> {
    std::env::set_var("IG_TEST_CONTAINERD_STANDALONE", "1");
    let sock = setup_script("containerd.sh", &[])?;
    setup_script("busybox-image.sh", &[&sock])?;
    Ok(sock)
}

async fn stop_containerd() -> Result<()> {
    let pid = std::fs::read_to_string(format!("{DIR}/containerd.pid"))
        .context("no test containerd pid file")?
        .trim()
        .to_string();
    run("kill", &["-TERM", &pid])?;
    for _ in 0..300 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("containerd {pid} did not exit within 30s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sees_containers_after_containerd_restart() -> Result<()> {
    setup_script("docker.sh", &[])?;
    let sock = standalone()?;
    let before = CtrContainer::run(&sock, "default", &unique("ig-ctr-before"), &[])?;
    let cfg = RuntimeConfig::new(RuntimeKind::Containerd)
        .socket(&sock)
        .explicit(true);
    let (coll, _) = ContainerCollection::start(vec![cfg]).await?;
    assert!(coll.all().iter().any(|c| c.id == before.id));

    stop_containerd().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Tasks outlive containerd (their shims keep running): still listed.
    assert!(coll.all().iter().any(|c| c.id == before.id));
    standalone()?;

    let mut rx = coll.subscribe();
    let after = CtrContainer::run(&sock, "k8s.io", &unique("ig-ctr-after"), &[])?;
    let id = after.id.clone();
    wait_event(
        &mut rx,
        30,
        |e| matches!(e, ContainerEvent::Added(c) if c.id == id),
    )
    .await?;
    assert!(
        coll.all().iter().any(|c| c.id == before.id),
        "lost on re-list"
    );

    before.remove()?;
    wait_event(&mut rx, 30, removed_id(&before.id)).await?;
    Ok(())
}
