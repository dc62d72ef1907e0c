//! `--metrics-address`: Prometheus text at `/metrics`, built from the daemon's state at each
//! scrape (prometheus-client's registry and encoder).

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::service::Service;

type Labels = Vec<(String, String)>;

/// The metrics text of the daemon now.
pub fn render(service: &Service) -> String {
    let mut registry = Registry::with_prefix("ig");
    let by_status = Family::<Labels, Gauge>::default();
    let events = Family::<Labels, Counter>::default();
    let lost = Family::<Labels, Counter>::default();
    let missed = Family::<Labels, Counter>::default();
    let clients = Gauge::<i64>::default();
    let containers = Gauge::<i64>::default();

    let mut statuses: BTreeMap<&str, i64> = ["Starting", "Running", "Completed", "Error"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    let mut attached = 0i64;
    for inst in service.instances.all() {
        let info = inst.to_proto();
        *statuses.entry(inst.status().as_str()).or_default() += 1;
        let labels = vec![
            ("instance".to_string(), info.name.clone()),
            ("id".to_string(), info.id.clone()),
        ];
        events.get_or_create(&labels).inc_by(info.events);
        lost.get_or_create(&labels).inc_by(info.lost);
        missed.get_or_create(&labels).inc_by(info.missed_by_clients);
        attached += i64::from(info.clients);
    }
    for (status, n) in statuses {
        by_status
            .get_or_create(&vec![("status".to_string(), status.to_string())])
            .set(n);
    }
    for run in service.client_runs() {
        attached += run.hub.clients() as i64;
    }
    clients.set(attached);
    containers.set(
        service
            .ctx
            .containers
            .as_ref()
            .map(|c| c.all().len() as i64)
            .unwrap_or(0),
    );
    registry.register("instances", "Gadget instances by status", by_status);
    registry.register("instance_events", "Events an instance emitted", events);
    registry.register(
        "instance_lost_events",
        "Events the kernel dropped for an instance (ring buffer full)",
        lost,
    );
    registry.register(
        "instance_missed_events",
        "Events clients of an instance missed because they read too slowly",
        missed,
    );
    registry.register("clients", "Clients streaming events now", clients);
    registry.register("containers", "Containers the daemon knows", containers);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let service = service.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    render(&service),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
