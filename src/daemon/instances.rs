//! Detached instances: their specs under `STATE_DIR/instances/ID.json`, their runs, and what
//! `ig list` / `ig show` tell about them. A restarted daemon resumes every spec it finds; one
//! that cannot start is kept with status `Error` and the reason, never dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::hub::{Hub, Phase};
use super::images::{self, DaemonImagePolicy};
use super::outfile::RotatingFile;
use super::outputs::SharedFile;
use super::proto;
use super::runs::{run_config, RunContext, RunHandle};
use super::DaemonError;

/// How long creating an instance waits for its programs to be attached.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Starting,
    Running,
    /// Ended by itself (its timeout or max events).
    Completed,
    Error,
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "Starting",
            Status::Running => "Running",
            Status::Completed => "Completed",
            Status::Error => "Error",
            Status::Deleted => "Deleted",
        }
    }
}

/// What is persisted of an instance.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    id: String,
    created_unix_ms: i64,
    request: proto::CreateInstanceRequest,
}

pub struct Instance {
    pub id: String,
    pub created_unix_ms: i64,
    pub request: proto::CreateInstanceRequest,
    state: Mutex<InstanceState>,
}

struct InstanceState {
    status: Status,
    error: String,
    digest: String,
    run: Option<Arc<RunHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Instance {
    fn new(id: String, created_unix_ms: i64, request: proto::CreateInstanceRequest) -> Arc<Self> {
        Arc::new(Instance {
            id,
            created_unix_ms,
            request,
            state: Mutex::new(InstanceState {
                status: Status::Starting,
                error: String::new(),
                digest: String::new(),
                run: None,
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.request.name
    }

    pub fn status(&self) -> Status {
        lock(&self.state).status
    }

    pub fn hub(&self) -> Option<Arc<Hub>> {
        lock(&self.state).run.as_ref().map(|r| r.hub.clone())
    }

    fn fail(&self, reason: String) {
        let mut st = lock(&self.state);
        st.status = Status::Error;
        st.error = reason;
    }

    pub fn to_proto(&self) -> proto::Instance {
        let st = lock(&self.state);
        let hub = st.run.as_ref().map(|r| &r.hub);
        let count = |f: fn(&Hub) -> u64| hub.map(|h| f(h)).unwrap_or(0);
        proto::Instance {
            id: self.id.clone(),
            name: self.request.name.clone(),
            tags: self.request.tags.clone(),
            status: st.status.as_str().into(),
            error: st.error.clone(),
            spec: self.request.spec.clone(),
            output_file: self.request.output_file.clone(),
            created_unix_ms: self.created_unix_ms,
            digest: st.digest.clone(),
            events: count(|h| h.counters.events.load(Ordering::Relaxed)),
            lost: count(|h| h.counters.lost.load(Ordering::Relaxed)),
            missed_by_clients: count(|h| h.counters.missed_by_clients.load(Ordering::Relaxed)),
            clients: hub.map(|h| h.clients() as u32).unwrap_or(0),
        }
    }
}

/// Every instance of the daemon, in creation order.
pub struct Instances {
    dir: PathBuf,
    ctx: RunContext,
    policy: DaemonImagePolicy,
    list: Mutex<Vec<Arc<Instance>>>,
}

fn valid_name(name: &str) -> Result<(), DaemonError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(DaemonError::Invalid(format!(
            "invalid instance name {name:?}: 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

fn new_id() -> String {
    use rand_core::RngCore;
    let mut raw = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Instances {
    pub fn new(
        state_dir: &Path,
        ctx: RunContext,
        policy: DaemonImagePolicy,
    ) -> Result<Self, DaemonError> {
        let dir = state_dir.join("instances");
        std::fs::create_dir_all(&dir).map_err(DaemonError::io(dir.display()))?;
        // Specs may hold the trusted keys and output paths clients gave: root's alone.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(DaemonError::io(dir.display()))?;
        Ok(Instances {
            dir,
            ctx,
            policy,
            list: Mutex::new(Vec::new()),
        })
    }

    pub fn all(&self) -> Vec<Arc<Instance>> {
        lock(&self.list).clone()
    }

    /// An instance by name, id, or unique id prefix.
    pub fn find(&self, selector: &str) -> Result<Arc<Instance>, DaemonError> {
        let list = lock(&self.list);
        if let Some(i) = list
            .iter()
            .find(|i| i.name() == selector || i.id == selector)
        {
            return Ok(i.clone());
        }
        let matches: Vec<_> = list
            .iter()
            .filter(|i| !selector.is_empty() && i.id.starts_with(selector))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(DaemonError::NotFound(format!(
                "no instance named {selector:?} (nor with that id); `ig list` shows them"
            ))),
            many => Err(DaemonError::Invalid(format!(
                "{selector:?} is the start of {} instance ids; give more of it",
                many.len()
            ))),
        }
    }

    fn spec_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn persist(&self, inst: &Instance) -> Result<(), DaemonError> {
        let record = Record {
            id: inst.id.clone(),
            created_unix_ms: inst.created_unix_ms,
            request: inst.request.clone(),
        };
        let path = self.spec_path(&inst.id);
        let tmp = path.with_extension("json.tmp");
        let text =
            serde_json::to_vec_pretty(&record).map_err(|e| DaemonError::Internal(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(DaemonError::io(tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(DaemonError::io(path.display()))
    }

    /// Creates, starts and persists a detached instance; returns once its programs are attached.
    pub async fn create(
        self: &Arc<Self>,
        mut request: proto::CreateInstanceRequest,
    ) -> Result<proto::Instance, DaemonError> {
        request.name = request.name.trim().to_string();
        valid_name(&request.name)?;
        if request.spec.is_none() {
            return Err(DaemonError::Invalid("the request has no run spec".into()));
        }
        let inst = {
            let mut list = lock(&self.list);
            if list.iter().any(|i| i.name() == request.name) {
                return Err(DaemonError::Exists(format!(
                    "an instance named {:?} exists already (`ig delete {}` first)",
                    request.name, request.name
                )));
            }
            let inst = Instance::new(new_id(), now_ms(), request);
            list.push(inst.clone());
            inst
        };
        match self.start(&inst, false).await {
            Ok(()) => {}
            Err(e) => {
                self.forget(&inst);
                return Err(e);
            }
        }
        if let Err(e) = self.persist(&inst) {
            self.stop(&inst).await;
            self.forget(&inst);
            return Err(e);
        }
        Ok(inst.to_proto())
    }

    fn forget(&self, inst: &Arc<Instance>) {
        lock(&self.list).retain(|i| !Arc::ptr_eq(i, inst));
    }

    /// Resolves the image and starts the run; errors out when the run fails before attaching.
    async fn start(
        self: &Arc<Self>,
        inst: &Arc<Instance>,
        resuming: bool,
    ) -> Result<(), DaemonError> {
        let spec = inst.request.spec.clone().unwrap_or_default();
        let image = spec.image.clone().unwrap_or_default();
        let resolved = images::resolve(&self.ctx.store, &image, &self.policy, resuming).await?;
        let config = run_config(&spec, &resolved)?;
        let file = match &inst.request.output_file {
            Some(f) if !f.path.is_empty() => {
                let path = PathBuf::from(&f.path);
                let file = RotatingFile::open(&path, f.max_size_bytes, f.max_backups)
                    .map_err(|e| DaemonError::Invalid(format!("--output-file {}: {e}", f.path)))?;
                let file: SharedFile = Arc::new(Mutex::new(Box::new(file)));
                Some(file)
            }
            _ => None,
        };
        let run = RunHandle::new(Arc::new(Hub::default()));
        {
            let mut st = lock(&inst.state);
            // Deleted while its image was resolved: `delete` found no run to stop.
            if st.status == Status::Deleted {
                return Err(DaemonError::NotFound(format!(
                    "instance {} was deleted while it started",
                    inst.name()
                )));
            }
            st.digest = resolved
                .verified
                .clone()
                .unwrap_or(resolved.info.digest.clone());
            st.run = Some(run.clone());
        }
        let weak: Weak<Instance> = Arc::downgrade(inst);
        run.launch(
            self.ctx.clone(),
            config,
            file,
            Some(format!("instance {}", inst.name())),
            move |result| {
                let Some(inst) = weak.upgrade() else {
                    return;
                };
                let mut st = lock(&inst.state);
                if st.status == Status::Deleted {
                    return;
                }
                match result {
                    Err(e) => {
                        st.status = Status::Error;
                        st.error = e.to_string();
                    }
                    // Stopped by the daemon's shutdown: still Running for the next start.
                    Ok(_) if st.status == Status::Running && run_stopped_by_daemon(&st) => {}
                    Ok(_) => st.status = Status::Completed,
                }
            },
        )?;
        let phase = tokio::time::timeout(START_TIMEOUT, run.hub.started())
            .await
            .unwrap_or(Phase::Starting);
        match phase {
            Phase::Running => {
                let mut st = lock(&inst.state);
                if st.status == Status::Starting {
                    st.status = Status::Running;
                }
                Ok(())
            }
            Phase::Ended => {
                let st = lock(&inst.state);
                // A snapshot may run, attach and complete before this task looks: the phase
                // is a watch, which keeps only the latest value.
                if st.status == Status::Completed {
                    return Ok(());
                }
                Err(DaemonError::Image(if st.error.is_empty() {
                    "the gadget ended before it was attached".into()
                } else {
                    st.error.clone()
                }))
            }
            Phase::Starting => {
                run.stop();
                Err(DaemonError::Internal(format!(
                    "the gadget was not attached within {} s",
                    START_TIMEOUT.as_secs()
                )))
            }
        }
    }

    async fn stop(&self, inst: &Instance) {
        let run = lock(&inst.state).run.clone();
        if let Some(run) = run {
            let _ = tokio::task::spawn_blocking(move || run.stop_and_join()).await;
        }
    }

    /// Stops the instance, waits until its programs are detached, and forgets its spec.
    pub async fn delete(&self, selector: &str) -> Result<proto::Instance, DaemonError> {
        let inst = self.find(selector)?;
        // Under the same lock as `start` sets the run: either the run is there to be stopped,
        // or `start` sees Deleted and launches nothing.
        let run = {
            let mut st = lock(&inst.state);
            st.status = Status::Deleted;
            st.run.clone()
        };
        if let Some(run) = run {
            let _ = tokio::task::spawn_blocking(move || run.stop_and_join()).await;
        }
        let path = self.spec_path(&inst.id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(DaemonError::io(path.display())(e))
            }
            _ => {}
        }
        self.forget(&inst);
        Ok(inst.to_proto())
    }

    /// Starts every persisted instance; one that cannot start is listed as `Error`.
    pub async fn resume(self: &Arc<Self>) {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(e) => {
                eprintln!("ig daemon: warning: reading {}: {e}", self.dir.display());
                return;
            }
        };
        entries.sort();
        let mut started = Vec::new();
        for path in entries {
            let id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let record: Result<Record, String> = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
            let inst = match record {
                Ok(r) => Instance::new(r.id, r.created_unix_ms, r.request),
                Err(e) => {
                    let inst = Instance::new(id, 0, proto::CreateInstanceRequest::default());
                    inst.fail(format!("its spec {} cannot be read: {e}", path.display()));
                    lock(&self.list).push(inst);
                    continue;
                }
            };
            lock(&self.list).push(inst.clone());
            started.push(inst);
        }
        lock(&self.list).sort_by_key(|i| i.created_unix_ms);
        for inst in started {
            let me = self.clone();
            // Each on its own: a slow registry delays only its own instance.
            tokio::spawn(async move {
                if let Err(e) = me.start(&inst, true).await {
                    eprintln!("ig daemon: instance {}: cannot start: {e}", inst.name());
                    inst.fail(e.to_string());
                }
            });
        }
    }

    /// Stops every run (the daemon is exiting); specs stay for the next start.
    pub async fn shutdown(&self) {
        for inst in self.all() {
            let run = lock(&inst.state).run.clone();
            if let Some(r) = &run {
                r.stop();
            }
        }
        for inst in self.all() {
            self.stop(&inst).await;
        }
    }
}

fn run_stopped_by_daemon(st: &InstanceState) -> bool {
    st.run
        .as_ref()
        .is_some_and(|r| r.stop_flag().load(Ordering::Relaxed))
}
