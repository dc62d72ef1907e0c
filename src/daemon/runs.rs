//! One gadget run inside the daemon: a thread running [`crate::run::run`] into a [`Hub`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::hub::Hub;
use super::images::Resolved;
use super::outputs::{HubOutputs, SharedFile};
use super::proto;
use super::DaemonError;
use crate::containers::ContainerCollection;
use crate::oci::Store;
use crate::operators::fields::FieldSelection;
use crate::output::OutputMode;
use crate::run::array_opts::ArrayOptions;
use crate::run::{ConnectContainers, RunConfig, RunError};

/// A run's thread and the flag that stops it.
pub struct RunHandle {
    pub hub: Arc<Hub>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What a run shares with the rest of the daemon.
#[derive(Clone)]
pub struct RunContext {
    pub store: Store,
    pub containers: Option<Arc<ContainerCollection>>,
    pub handle: tokio::runtime::Handle,
}

/// The run configuration of a spec whose image passed the rules.
pub fn run_config(spec: &proto::RunSpec, resolved: &Resolved) -> Result<RunConfig, DaemonError> {
    let output = if spec.output.is_empty() {
        OutputMode::Columns
    } else {
        OutputMode::parse(&spec.output).map_err(DaemonError::Invalid)?
    };
    Ok(RunConfig {
        image: resolved.reference.clone(),
        output,
        fields: FieldSelection::Default,
        timeout: (spec.timeout_ms > 0).then(|| std::time::Duration::from_millis(spec.timeout_ms)),
        host: spec.host,
        containers: spec.containers.clone(),
        params: spec
            .params
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
        max_events: (spec.max_events > 0).then_some(spec.max_events),
        expected_digest: resolved.verified.clone(),
        syscall_filters: spec.syscall_filters.clone(),
        filters: spec.filters.clone(),
        arrays: array_options(spec.arrays.as_ref().cloned().unwrap_or_default())?,
    })
}

/// The longest `--map-fetch-interval` (what the client's parser takes, too).
const MAX_FETCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(86_400 * 365);

/// `RunSpec.arrays` as the run takes them (0 ns: the kind's default interval). Errors: an
/// interval over a year.
fn array_options(a: proto::ArrayOptions) -> Result<ArrayOptions, DaemonError> {
    let interval = std::time::Duration::from_nanos(a.map_fetch_interval_ns);
    if interval > MAX_FETCH_INTERVAL {
        return Err(DaemonError::Invalid(format!(
            "map_fetch_interval_ns {}: at most a year",
            a.map_fetch_interval_ns
        )));
    }
    Ok(ArrayOptions {
        fetch_interval: (!interval.is_zero()).then_some(interval),
        fetch_count: a.map_fetch_count,
        sort: a.sort,
        max_entries: a
            .max_entries
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    })
}

impl RunHandle {
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        Arc::new(RunHandle {
            hub,
            stop: Arc::new(AtomicBool::new(false)),
            thread: Mutex::new(None),
        })
    }

    /// A flag whose setting stops the run (a client's run stops when its client goes).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Starts the run's thread. `on_end` sees the run's result before the hub's clients do.
    pub fn launch(
        self: &Arc<Self>,
        ctx: RunContext,
        config: RunConfig,
        file: Option<SharedFile>,
        log_as: Option<String>,
        on_end: impl FnOnce(&Result<u64, RunError>) + Send + 'static,
    ) -> Result<(), DaemonError> {
        let me = self.clone();
        let name = format!("ig-run-{}", config.image.short_name());
        let thread = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || {
                let outputs = HubOutputs {
                    hub: me.hub.clone(),
                    file,
                    log_as,
                };
                let RunContext {
                    store,
                    containers,
                    handle,
                } = ctx;
                let connect: ConnectContainers<'_> =
                    Box::new(move || Ok(containers.map(|c| (c, handle))));
                let result = crate::run::run(&store, &config, connect, &me.stop, &outputs);
                on_end(&result);
                me.hub.end(result.err().map(|e| e.to_string()));
            })
            .map_err(|e| DaemonError::Internal(format!("starting a run thread: {e}")))?;
        *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(())
    }

    /// Asks the run to stop (it detaches its programs within one poll interval).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the run and waits until its programs are detached and its maps closed.
    pub fn stop_and_join(&self) {
        self.stop();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_options_from_the_wire() {
        let a = array_options(proto::ArrayOptions {
            map_fetch_interval_ns: 250_000_000,
            map_fetch_count: Some(0),
            sort: vec!["-pid".into()],
            max_entries: Some(u64::MAX),
        })
        .unwrap();
        assert_eq!(
            a.fetch_interval,
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(a.fetch_count, Some(0));
        assert_eq!(a.max_entries, Some(usize::MAX));
        // Nothing set: the gadget kind's defaults.
        let none = array_options(proto::ArrayOptions::default()).unwrap();
        assert!(!none.any_set());
        // An interval the run loop could not add to a clock is refused.
        let err = array_options(proto::ArrayOptions {
            map_fetch_interval_ns: u64::MAX,
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("at most a year"), "{err}");
    }
}
