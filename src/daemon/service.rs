//! The gRPC service (`proto/daemon.proto`'s `GadgetManager`) over the daemon's state.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::Stream;
use tonic::{Request, Response, Status};

use super::hub::Hub;
use super::images::{self, DaemonImagePolicy};
use super::instances::Instances;
use super::lines_pipe::LinesPipeWriter;
use super::proto::{self, gadget_manager_server::GadgetManager};
use super::runs::{run_config, RunContext, RunHandle};
use super::traceloop::TraceloopHandle;
use super::DaemonError;
use crate::gadget::metadata::debug;

pub struct Service {
    pub ctx: RunContext,
    pub policy: DaemonImagePolicy,
    pub instances: Arc<Instances>,
    /// Runs of attached clients (`ig run --remote`), stopped at shutdown.
    pub client_runs: Mutex<Vec<Arc<RunHandle>>>,
    /// The always-on flight recorder, when the daemon runs one.
    pub traceloop: Mutex<Option<Arc<TraceloopHandle>>>,
}

/// Drops the runs that are over (their clients read the end already or are gone).
fn forget_ended(runs: &mut Vec<Arc<RunHandle>>) {
    runs.retain(|r| r.hub.phase() != super::hub::Phase::Ended);
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::RunEvent, Status>> + Send>>;

impl Service {
    /// Every hub of the daemon, for metrics: instances' and clients' runs.
    pub fn client_runs(&self) -> Vec<Arc<RunHandle>> {
        let mut runs = self.client_runs.lock().unwrap_or_else(|p| p.into_inner());
        forget_ended(&mut runs);
        runs.clone()
    }

    pub async fn shutdown(&self) {
        let runs = self.client_runs();
        for r in &runs {
            // A run writing a client's lines pipe stops waiting for its reader.
            r.hub.abandon_lines_pipe();
            r.stop();
        }
        for r in runs {
            let _ = tokio::task::spawn_blocking(move || r.stop_and_join()).await;
        }
        self.instances.shutdown().await;
        let recorder = self
            .traceloop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // Its drop joins the recorder's thread, which detaches on its way out.
        let _ = tokio::task::spawn_blocking(move || drop(recorder)).await;
    }

    fn recorder(&self) -> Result<Arc<TraceloopHandle>, DaemonError> {
        self.traceloop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                DaemonError::Image(
                    "this daemon records no syscalls: start it with `ig daemon --traceloop`".into(),
                )
            })
    }
}

#[tonic::async_trait]
impl GadgetManager for Service {
    async fn get_gadget_info(
        &self,
        request: Request<proto::GetGadgetInfoRequest>,
    ) -> Result<Response<proto::GadgetInfo>, Status> {
        let opts = request.into_inner().image.unwrap_or_default();
        let resolved = images::resolve(&self.ctx.store, &opts, &self.policy, false).await?;
        Ok(Response::new(resolved.info))
    }

    type RunGadgetStream = EventStream;

    async fn run_gadget(
        &self,
        request: Request<tonic::Streaming<proto::RunGadgetRequest>>,
    ) -> Result<Response<Self::RunGadgetStream>, Status> {
        let passed = request
            .extensions()
            .get::<super::passfd::PassedFd>()
            .and_then(|p| p.take());
        let mut requests = request.into_inner();
        let spec = requests
            .message()
            .await?
            .and_then(|r| r.spec)
            .ok_or_else(|| DaemonError::Invalid("the first request has no run spec".into()))?;
        let opts = spec.image.clone().unwrap_or_default();
        let resolved = images::resolve(&self.ctx.store, &opts, &self.policy, false).await?;
        let config = run_config(&spec, &resolved)?;
        let json_lines = spec.json_lines && config.output == crate::output::OutputMode::Json;
        let hub = Hub::default().with_json_lines(json_lines);
        let hub = match passed {
            Some(fd) if json_lines && spec.lines_pipe_passed => {
                match LinesPipeWriter::new(fd, hub.client_buffer()) {
                    Ok(out) => hub.with_lines_pipe(out),
                    Err(e) => {
                        debug(&format!("a client's lines pipe is not used: {e}"));
                        hub
                    }
                }
            }
            _ => hub,
        };
        let run = RunHandle::new(Arc::new(hub));
        // Subscribed before the run starts: the client gets every event. Its going away stops
        // the run.
        let stop = run.stop_flag();
        let sub = run
            .hub
            .subscribe(false)
            .on_drop(move || stop.store(true, std::sync::atomic::Ordering::Relaxed));
        run.launch(self.ctx.clone(), config, None, None, |_| {})?;
        // Any further request, or the end of the requests, stops the run; its events keep
        // flowing until End.
        let stop = run.stop_flag();
        tokio::spawn(async move {
            let _ = requests.message().await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let mut runs = self.client_runs.lock().unwrap_or_else(|p| p.into_inner());
        forget_ended(&mut runs);
        runs.push(run);
        Ok(Response::new(Box::pin(sub.into_stream())))
    }

    async fn create_instance(
        &self,
        request: Request<proto::CreateInstanceRequest>,
    ) -> Result<Response<proto::Instance>, Status> {
        Ok(Response::new(
            self.instances.create(request.into_inner()).await?,
        ))
    }

    async fn list_instances(
        &self,
        _request: Request<proto::ListInstancesRequest>,
    ) -> Result<Response<proto::ListInstancesResponse>, Status> {
        Ok(Response::new(proto::ListInstancesResponse {
            instances: self.instances.all().iter().map(|i| i.to_proto()).collect(),
        }))
    }

    async fn get_instance(
        &self,
        request: Request<proto::InstanceSelector>,
    ) -> Result<Response<proto::Instance>, Status> {
        let inst = self.instances.find(&request.into_inner().selector)?;
        Ok(Response::new(inst.to_proto()))
    }

    async fn delete_instance(
        &self,
        request: Request<proto::InstanceSelector>,
    ) -> Result<Response<proto::Instance>, Status> {
        Ok(Response::new(
            self.instances
                .delete(&request.into_inner().selector)
                .await?,
        ))
    }

    type AttachInstanceStream = EventStream;

    async fn attach_instance(
        &self,
        request: Request<proto::InstanceSelector>,
    ) -> Result<Response<Self::AttachInstanceStream>, Status> {
        let inst = self.instances.find(&request.into_inner().selector)?;
        let Some(hub) = inst.hub() else {
            let info = inst.to_proto();
            return Err(DaemonError::Invalid(format!(
                "instance {} is not running ({}): {}",
                info.name, info.status, info.error
            ))
            .into());
        };
        Ok(Response::new(Box::pin(hub.subscribe(true).into_stream())))
    }

    async fn traceloop_list(
        &self,
        _request: Request<proto::TraceloopListRequest>,
    ) -> Result<Response<proto::TraceloopListResponse>, Status> {
        Ok(Response::new(self.recorder()?.list().await?))
    }

    async fn traceloop_show(
        &self,
        request: Request<proto::TraceloopShowRequest>,
    ) -> Result<Response<proto::TraceloopShowResponse>, Status> {
        Ok(Response::new(
            self.recorder()?.show(request.into_inner()).await?,
        ))
    }

    async fn traceloop_close(
        &self,
        request: Request<proto::TraceSelector>,
    ) -> Result<Response<proto::Trace>, Status> {
        Ok(Response::new(
            self.recorder()?
                .close(request.into_inner().selector)
                .await?,
        ))
    }
}
