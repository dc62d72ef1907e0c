//! Background watcher of one runtime: applies its events to the collection
//! and, when the event stream breaks (daemon restarted), reconnects with
//! backoff and re-lists.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

use super::collection::{ContainerCollection, Key};
use super::container::{Container, RuntimeKind};
use super::error::ContainerError;
use super::runtime::{RuntimeClient, RuntimeEvent};

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// After (re)subscribing, list once more this much later: a stream's
/// subscription is only made when first polled, so a container that
/// started between the list and the subscription is caught here.
const SETTLE: Duration = Duration::from_secs(1);

/// An event stream drained by its own task from the moment it is created.
pub(super) struct Forwarded {
    rx: mpsc::Receiver<Result<RuntimeEvent, ContainerError>>,
    task: JoinHandle<()>,
}

impl Drop for Forwarded {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn forward(
    mut stream: BoxStream<'static, Result<RuntimeEvent, ContainerError>>,
) -> Forwarded {
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    Forwarded { rx, task }
}

/// Runs until the collection is dropped.
pub(super) async fn run(
    collection: Weak<ContainerCollection>,
    source: usize,
    client: Arc<dyn RuntimeClient>,
    mut events: Forwarded,
) {
    let mut settle_at = Some(Instant::now() + SETTLE);
    loop {
        let reason = loop {
            let next = match settle_at {
                Some(at) => tokio::select! {
                    ev = events.rx.recv() => ev,
                    _ = tokio::time::sleep_until(at) => {
                        settle_at = None;
                        if let Ok(list) = client.list().await {
                            let Some(c) = collection.upgrade() else { return };
                            c.reconcile(source, list);
                        }
                        continue;
                    }
                },
                None => events.rx.recv().await,
            };
            match next {
                Some(Ok(ev)) => {
                    if !apply(&collection, source, client.as_ref(), ev).await {
                        return;
                    }
                }
                Some(Err(e)) => break e.to_string(),
                None => break format!("{} event stream ended", client.kind()),
            };
        };
        eprintln!("ig: {reason}; reconnecting");
        let mut backoff = BACKOFF_MIN;
        loop {
            sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            if collection.strong_count() == 0 {
                return;
            }
            let fresh = forward(client.events());
            match client.list().await {
                Ok(list) => {
                    let Some(c) = collection.upgrade() else {
                        return;
                    };
                    c.reconcile(source, list);
                    events = fresh;
                    settle_at = Some(Instant::now() + SETTLE);
                    eprintln!(
                        "ig: {} ({}): reconnected",
                        client.kind(),
                        client.socket_path().display()
                    );
                    break;
                }
                Err(_) => continue,
            }
        }
    }
}

/// Applies one event; `false` once the collection is gone.
async fn apply(
    collection: &Weak<ContainerCollection>,
    source: usize,
    client: &dyn RuntimeClient,
    ev: RuntimeEvent,
) -> bool {
    match ev {
        RuntimeEvent::Started {
            namespace,
            id,
            name,
            image,
            pid,
        } => {
            let found = client.inspect(&id, namespace.as_deref(), None).await;
            let Some(c) = collection.upgrade() else {
                return false;
            };
            match found {
                Ok(Some(container)) => {
                    c.insert(source, container);
                }
                // Already exited: remember its name for what it left behind.
                Ok(None) => match client.describe(&id, namespace.as_deref()).await {
                    Ok(Some(mut gone)) => {
                        if gone.pid == 0 {
                            gone.pid = pid.unwrap_or(0);
                        }
                        c.remember_exited(gone);
                    }
                    // Removed already (`docker run --rm`, `ctr run --rm`): the event names it
                    // (containerd's name is its id: its labels are gone with it).
                    _ => {
                        let name = match client.kind() {
                            RuntimeKind::Containerd => name.or_else(|| Some(id.clone())),
                            RuntimeKind::Docker | RuntimeKind::Podman => name,
                        };
                        if let Some(name) = name {
                            let mut gone =
                                Container::exited(client.kind(), &id, &name, image.as_deref(), pid);
                            gone.containerd_namespace = namespace.clone();
                            c.remember_exited(gone);
                        }
                    }
                },
                Err(e) => eprintln!("ig: {e}"),
            }
        }
        RuntimeEvent::Stopped { namespace, id } => {
            let Some(c) = collection.upgrade() else {
                return false;
            };
            c.remove(&Key::new(source, namespace.as_deref(), &id));
        }
    }
    true
}
