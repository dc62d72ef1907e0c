//! Runtimes whose socket is absent or silent: a notice, or an error when
//! the user named them.

mod containers_common;

use std::time::{Duration, Instant};

use anyhow::Result;
use containers_common::containers::{
    ContainerCollection, ContainerError, RuntimeConfig, RuntimeKind,
};

#[tokio::test]
async fn absent_socket_is_skipped_with_a_notice() -> Result<()> {
    let configs = vec![
        RuntimeConfig::new(RuntimeKind::Docker).socket("/nonexistent/docker.sock"),
        RuntimeConfig::new(RuntimeKind::Containerd).socket("/nonexistent/containerd.sock"),
    ];
    let (coll, warnings) = ContainerCollection::start(configs).await?;
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("docker: socket") && warnings[0].ends_with("; skipping docker"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("/nonexistent/docker.sock"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].contains("/nonexistent/containerd.sock"),
        "{}",
        warnings[1]
    );
    assert!(warnings.iter().all(|w| !w.contains('\n')));
    assert!(coll.all().is_empty());
    assert!(coll.runtimes().is_empty());
    Ok(())
}

#[tokio::test]
async fn absent_explicit_socket_is_an_error() {
    for kind in RuntimeKind::ALL {
        let sock = format!("/nonexistent/{kind}.sock");
        let cfg = RuntimeConfig::new(kind).socket(&sock).explicit(true);
        let err = match ContainerCollection::start(vec![cfg]).await {
            Ok(_) => panic!("{kind}: started without its socket"),
            Err(e) => e,
        };
        assert!(
            matches!(err, ContainerError::SocketMissing { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&sock) && msg.contains(kind.as_str()), "{msg}");
    }
}

/// A socket file nobody listens on: refused at once, not a hang.
#[tokio::test]
async fn dead_socket_is_skipped_quickly() -> Result<()> {
    let dir = std::env::temp_dir().join(containers_common::unique("ig-dead-sock"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("runtime.sock");
    drop(std::os::unix::net::UnixListener::bind(&path)?);
    let t0 = Instant::now();
    let configs = RuntimeKind::ALL
        .into_iter()
        .map(|k| RuntimeConfig::new(k).socket(&path))
        .collect();
    let (_, warnings) = ContainerCollection::start(configs).await?;
    // podman too: its socket exists (it is only quiet when the socket is missing).
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(t0.elapsed() < Duration::from_secs(12), "{:?}", t0.elapsed());

    let explicit = RuntimeConfig::new(RuntimeKind::Docker)
        .socket(&path)
        .explicit(true);
    let err = ContainerCollection::start(vec![explicit]).await.err();
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn runtime_names_parse() {
    assert_eq!(
        "docker".parse::<RuntimeKind>().ok(),
        Some(RuntimeKind::Docker)
    );
    assert_eq!(
        " containerd".parse::<RuntimeKind>().ok(),
        Some(RuntimeKind::Containerd)
    );
    assert_eq!(
        "podman".parse::<RuntimeKind>().ok(),
        Some(RuntimeKind::Podman)
    );
    let err = "cri-o".parse::<RuntimeKind>().err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("cri-o")));
    assert_eq!(RuntimeConfig::defaults().len(), 3);
    assert_eq!(
        RuntimeConfig::new(RuntimeKind::Docker).socket_path.to_str(),
        Some("/var/run/docker.sock")
    );
}
