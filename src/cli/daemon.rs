//! `ig daemon`: flags, privileges, listeners; the serving itself is `ig::daemon::serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use ig::containers::{RuntimeConfig, RuntimeKind};
use ig::daemon::{DaemonConfig, DaemonImagePolicy, Listener, ServerTls};

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Unix socket to serve on (its directory becomes root:GROUP 0710, the socket 0660)
    #[arg(long, value_name = "PATH", default_value = ig::daemon::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Group whose members may use the socket (name or number)
    #[arg(long, value_name = "NAME|GID", default_value = "root")]
    group: String,
    /// Also serve on TCP (mutual TLS required unless --tls-insecure)
    #[arg(long, value_name = "tcp://ADDR:PORT")]
    listen: Option<String>,
    /// The server's certificate for --listen (PEM)
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM)
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// CA that signs the certificates of clients allowed on --listen (PEM)
    #[arg(long, value_name = "PEM")]
    tls_client_ca: Option<PathBuf>,
    /// Serve --listen without TLS: anyone who reaches the port can run gadgets
    #[arg(long)]
    tls_insecure: bool,
    /// Where the OCI store and the instances' specs live
    #[arg(long, value_name = "DIR", default_value = ig::daemon::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_address: Option<SocketAddr>,
    /// Container runtimes (docker, containerd, podman); a missing one is skipped unless named
    /// here (podman silently when its socket does not exist)
    #[arg(long, value_name = "LIST")]
    runtimes: Option<String>,
    /// Docker engine socket
    #[arg(long, value_name = "PATH")]
    docker_socketpath: Option<String>,
    /// containerd socket
    #[arg(long, value_name = "PATH")]
    containerd_socketpath: Option<String>,
    /// podman's Docker-compatible API socket (`podman system service`)
    #[arg(long, value_name = "PATH")]
    podman_socketpath: Option<String>,
    /// Only these images may run, whatever clients ask: exact references or prefix*
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    allowed_gadgets: Vec<String>,
    /// Registries spoken to over plain HTTP
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',')]
    insecure_registries: Vec<String>,
    /// Record the syscalls of every container, always (see `ig traceloop`)
    #[arg(long, help_heading = "Flight recorder")]
    traceloop: bool,
    /// Record only these containers (names, comma-separated)
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        help_heading = "Flight recorder"
    )]
    traceloop_containers: Vec<String>,
    /// Containers recorded at the same time (running and exited traces)
    #[arg(
        long,
        value_name = "N",
        default_value = "64",
        help_heading = "Flight recorder"
    )]
    traceloop_max_containers: u32,
    /// Records kept per container (one per syscall enter or exit; 240 bytes each)
    #[arg(
        long,
        value_name = "N",
        default_value = "4096",
        help_heading = "Flight recorder"
    )]
    traceloop_records: u32,
    /// Exited containers' traces kept; beyond, the oldest are freed [default: half of --traceloop-max-containers]
    #[arg(long, value_name = "N", help_heading = "Flight recorder")]
    traceloop_max_exited: Option<usize>,
}

fn runtimes(args: &DaemonArgs) -> anyhow::Result<Vec<RuntimeConfig>> {
    let explicit = args.runtimes.is_some();
    let list = args
        .runtimes
        .as_deref()
        .unwrap_or(ig::containers::DEFAULT_RUNTIMES);
    let mut configs = Vec::new();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "none")
    {
        let kind: RuntimeKind = name.parse()?;
        let socket = match kind {
            RuntimeKind::Docker => args.docker_socketpath.as_ref(),
            RuntimeKind::Containerd => args.containerd_socketpath.as_ref(),
            RuntimeKind::Podman => args.podman_socketpath.as_ref(),
        };
        let mut config = RuntimeConfig::new(kind).explicit(explicit || socket.is_some());
        if let Some(path) = socket {
            config = config.socket(path);
        }
        configs.push(config);
    }
    Ok(configs)
}

fn tls(args: &DaemonArgs) -> anyhow::Result<Option<ServerTls>> {
    let given = [
        ("--tls-cert", &args.tls_cert),
        ("--tls-key", &args.tls_key),
        ("--tls-client-ca", &args.tls_client_ca),
    ];
    let missing: Vec<&str> = given
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(f, _)| *f)
        .collect();
    if args.listen.is_none() {
        if missing.len() < 3 || args.tls_insecure {
            anyhow::bail!("TLS flags are for --listen tcp://ADDR:PORT");
        }
        return Ok(None);
    }
    match (missing.len(), args.tls_insecure) {
        (0, false) => {}
        (0, true) => anyhow::bail!("--tls-insecure and TLS certificates exclude each other"),
        (3, true) => {
            eprintln!(
                "ig daemon: warning: --tls-insecure: the TCP listener has no TLS; anyone who reaches it can run gadgets as root"
            );
            return Ok(None);
        }
        (3, false) => anyhow::bail!(
            "refusing to serve TCP without TLS: give --tls-cert, --tls-key and --tls-client-ca (mutual TLS), or --tls-insecure"
        ),
        _ => anyhow::bail!(
            "mutual TLS needs --tls-cert, --tls-key and --tls-client-ca; missing: {}",
            missing.join(", ")
        ),
    }
    let read = |p: &Option<PathBuf>| -> anyhow::Result<Vec<u8>> {
        let p = p.as_ref().context("checked above")?;
        std::fs::read(p).with_context(|| format!("reading {}", p.display()))
    };
    Ok(Some(ServerTls {
        cert: read(&args.tls_cert)?,
        key: read(&args.tls_key)?,
        client_ca: read(&args.tls_client_ca)?,
    }))
}

fn traceloop_config(args: &DaemonArgs) -> anyhow::Result<Option<ig::daemon::TraceloopConfig>> {
    if !args.traceloop {
        if !args.traceloop_containers.is_empty() || args.traceloop_max_exited.is_some() {
            anyhow::bail!("--traceloop-* flags need --traceloop");
        }
        return Ok(None);
    }
    if args.traceloop_max_containers == 0 || args.traceloop_records == 0 {
        anyhow::bail!("--traceloop-max-containers and --traceloop-records must be positive");
    }
    let max = args.traceloop_max_containers as usize;
    let max_exited = args.traceloop_max_exited.unwrap_or(max / 2);
    if max_exited >= max {
        anyhow::bail!(
            "--traceloop-max-exited {max_exited} must be below --traceloop-max-containers {max}: running containers need buffers too"
        );
    }
    Ok(Some(ig::daemon::TraceloopConfig {
        containers: args.traceloop_containers.clone(),
        max_containers: args.traceloop_max_containers,
        records_per_container: args.traceloop_records,
        max_exited,
    }))
}

pub fn main(args: DaemonArgs) -> anyhow::Result<ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("ig daemon must run as root: it loads BPF programs (try `sudo ig daemon`)");
    }
    let tls = tls(&args)?;
    let tcp = match &args.listen {
        Some(l) => Some(
            l.strip_prefix("tcp://")
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .with_context(|| {
                    format!("--listen {l:?}: use tcp://ADDR:PORT, e.g. tcp://127.0.0.1:2223")
                })?,
        ),
        None => None,
    };
    let gid = ig::daemon::socket::group_id(&args.group)?;
    let configs = runtimes(&args)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    tokio.block_on(async {
        let mut listeners = vec![Listener::Unix(ig::daemon::socket::bind(&args.socket, gid)?)];
        if let Some(addr) = tcp {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            listeners.push(Listener::Tcp { listener, tls });
        }
        let metrics = match args.metrics_address {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("--metrics-address {addr}"))?,
            ),
            None => None,
        };
        let config = DaemonConfig {
            state_dir: args.state_dir.clone(),
            runtimes: configs,
            policy: DaemonImagePolicy {
                allowed_gadgets: args.allowed_gadgets.clone(),
                insecure_registries: args.insecure_registries.clone(),
            },
            metrics,
            traceloop: traceloop_config(&args)?,
        };
        eprintln!(
            "ig daemon: serving on unix://{}{} (state in {})",
            args.socket.display(),
            tcp.map(|a| format!(" and tcp://{a}")).unwrap_or_default(),
            args.state_dir.display()
        );
        let result = ig::daemon::serve(listeners, config, shutdown_signal()).await;
        let _ = std::fs::remove_file(&args.socket);
        result?;
        eprintln!("ig daemon: stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        // Without handlers the default action (exit) applies; wait forever.
        _ => std::future::pending::<()>().await,
    }
}
