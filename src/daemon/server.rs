//! `ig daemon`: one process per machine holding the OCI store, the container collection and
//! the gadget instances, serving [`proto`](super::proto)'s `GadgetManager` on a Unix socket
//! and/or TCP with mutual TLS.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use super::images::DaemonImagePolicy;
use super::instances::Instances;
use super::proto::gadget_manager_server::GadgetManagerServer;
use super::runs::RunContext;
use super::service::Service;
use super::DaemonError;
use crate::containers::{ContainerCollection, RuntimeConfig};
use crate::oci::Store;

/// How long the servers may take to close their streams once every run ended.
const DRAIN: Duration = Duration::from_secs(3);

pub struct DaemonConfig {
    /// The OCI store (`oci-store/`) and the instances' specs (`instances/`) live here.
    pub state_dir: PathBuf,
    /// Container runtimes the daemon's collection connects to; empty: none.
    pub runtimes: Vec<RuntimeConfig>,
    pub policy: DaemonImagePolicy,
    /// Where `/metrics` is served.
    pub metrics: Option<tokio::net::TcpListener>,
    /// The always-on flight recorder (`--traceloop`).
    pub traceloop: Option<super::TraceloopConfig>,
}

/// PEM texts of the server's certificate and key, and of the CA that signs client certificates.
pub struct ServerTls {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub client_ca: Vec<u8>,
}

pub enum Listener {
    Unix(tokio::net::UnixListener),
    /// Without `tls` only with `--tls-insecure`.
    Tcp {
        listener: tokio::net::TcpListener,
        tls: Option<ServerTls>,
    },
}

/// Serves `listeners` until `shutdown` resolves; then stops every run (their programs are
/// detached when this returns). Instances persisted in the state directory are resumed first.
pub async fn serve(
    listeners: Vec<Listener>,
    config: DaemonConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let store_dir = config.state_dir.join("oci-store");
    let store = Store::open(&store_dir).map_err(|e| DaemonError::Setup(e.to_string()))?;
    let containers = if config.runtimes.is_empty() {
        None
    } else {
        let (collection, notices) = ContainerCollection::start(config.runtimes)
            .await
            .map_err(|e| DaemonError::Setup(format!("container runtimes: {e}")))?;
        for n in notices {
            eprintln!("ig daemon: {n}");
        }
        Some(collection)
    };
    let ctx = RunContext {
        store,
        containers,
        handle: tokio::runtime::Handle::current(),
    };
    let instances = Arc::new(Instances::new(
        &config.state_dir,
        ctx.clone(),
        config.policy.clone(),
    )?);
    let traceloop = match config.traceloop {
        Some(tl) => {
            let ctx = ctx.clone();
            let handle = tokio::task::spawn_blocking(move || {
                super::traceloop::TraceloopHandle::start(ctx, tl)
            })
            .await
            .map_err(|e| DaemonError::Internal(e.to_string()))??;
            Some(Arc::new(handle))
        }
        None => None,
    };
    instances.resume().await;
    let service = Arc::new(Service {
        ctx,
        policy: config.policy,
        instances,
        client_runs: Mutex::new(Vec::new()),
        traceloop: Mutex::new(traceloop),
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let svc = GadgetManagerServer::from_arc(service.clone());
        let done = stopped();
        match listener {
            Listener::Unix(l) => {
                let router = Server::builder().add_service(svc);
                servers.spawn(async move {
                    router
                        .serve_with_incoming_shutdown(super::passfd::incoming(l), done)
                        .await
                });
            }
            Listener::Tcp { listener, tls } => {
                let mut builder = Server::builder();
                if let Some(tls) = tls {
                    let tls = ServerTlsConfig::new()
                        .identity(Identity::from_pem(tls.cert, tls.key))
                        .client_ca_root(Certificate::from_pem(tls.client_ca));
                    builder = builder
                        .tls_config(tls)
                        .map_err(|e| DaemonError::Setup(format!("TLS: {e}")))?;
                }
                let router = builder.add_service(svc);
                servers.spawn(async move {
                    router
                        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), done)
                        .await
                });
            }
        }
    }
    if let Some(l) = config.metrics {
        let (svc, done) = (service.clone(), stopped());
        tokio::spawn(async move {
            if let Err(e) = super::metrics::serve(l, svc, done).await {
                eprintln!("ig daemon: metrics: {e}");
            }
        });
    }

    tokio::select! {
        _ = shutdown => {}
        Some(result) = servers.join_next() => {
            // A server that stops by itself is an error (its listener failed).
            service.shutdown().await;
            return Err(DaemonError::Setup(match result {
                Ok(Err(e)) => format!("serving: {e}"),
                Ok(Ok(())) => "a server stopped".into(),
                Err(e) => format!("serving: {e}"),
            }));
        }
    }
    // Runs first: their streams end with an End event, then the servers close.
    service.shutdown().await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}
