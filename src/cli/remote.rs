//! Clients of `ig daemon`: `ig run --remote`, `ig run --detach`, `ig list`, `ig attach`,
//! `ig show`, `ig delete`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgMatches, Args};

use ig::daemon::client::{
    connect, connect_with_lines_pipe, lines_pipe_wanted, status_error, Client, ClientTls, Flow,
    LinesPipe, Remote, Render,
};
use ig::daemon::proto;
use ig::oci::transfer::PullPolicy;
use ig::operators::fields::FieldSelection;
use ig::output::OutputMode;

use super::print;
use super::run::{
    array_options, gadget_command, output_and_fields, output_and_fields_of, param_values,
    scan_flag, with_array_flags, ImageFlags, ParamFlag,
};

/// How a client reaches the daemon.
#[derive(Args, Debug)]
pub struct RemoteArgs {
    /// The daemon: unix:///PATH or tcp://HOST:PORT
    #[arg(
        long,
        env = "IG_REMOTE",
        value_name = "ADDRESS",
        default_value = "unix:///var/run/ig/ig.socket"
    )]
    remote: String,
    /// Client certificate for a tcp:// daemon (PEM)
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<std::path::PathBuf>,
    /// Key of --tls-cert (PEM)
    #[arg(long, value_name = "PEM")]
    tls_key: Option<std::path::PathBuf>,
    /// CA of the daemon's certificate (PEM)
    #[arg(long, value_name = "PEM")]
    tls_server_ca: Option<std::path::PathBuf>,
}

fn read_pem(path: Option<&std::path::Path>) -> anyhow::Result<Option<Vec<u8>>> {
    path.map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .transpose()
}

fn client_tls(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<ClientTls> {
    Ok(ClientTls {
        cert: read_pem(cert)?,
        key: read_pem(key)?,
        server_ca: read_pem(ca)?,
    })
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) async fn connect_args(args: &RemoteArgs) -> anyhow::Result<(Client, Remote)> {
    let remote: Remote = args.remote.parse()?;
    let tls = client_tls(
        args.tls_cert.as_deref(),
        args.tls_key.as_deref(),
        args.tls_server_ca.as_deref(),
    )?;
    Ok((connect(&remote, &tls).await?, remote))
}

/// Reads a run's stream and prints it until it ends, Ctrl-C, or SIGTERM.
/// With `stop` (a run of this client), the first Ctrl-C or SIGTERM asks the daemon to stop the
/// run and the stream is read to its end (drained events, losses, a flight recorder's
/// history); a second one, or any with no `stop` (attach), leaves at once. With `lines` (the
/// run's lines pipe), a run that ended waits until its lines reached stdout, as a local run
/// does; a Ctrl-C or SIGTERM meanwhile leaves.
async fn print_stream(
    remote: &Remote,
    mut stream: tonic::Streaming<proto::RunEvent>,
    mut render: Render,
    mut stop: Option<tokio::sync::mpsc::Sender<proto::RunGadgetRequest>>,
    lines: Option<LinesPipe>,
) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut run_error = None;
    let mut left = false;
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = async { tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} } } => {
                match stop.take() {
                    Some(tx) => {
                        let _ = tx.send(proto::RunGadgetRequest { spec: None, stop: true }).await;
                        continue;
                    }
                    None => {
                        left = true;
                        break;
                    }
                }
            }
        };
        match msg {
            Ok(Some(ev)) => match render.handle(ev)? {
                Flow::Continue => {}
                Flow::Done(err) => {
                    run_error = err;
                    break;
                }
            },
            Ok(None) => {
                run_error = Some("the daemon ended the stream without saying why".into());
                break;
            }
            Err(s) => {
                run_error = Some(status_error(remote, s).to_string());
                break;
            }
        }
    }
    if let Some(lines) = lines.filter(|_| !left) {
        tokio::select! {
            copied = lines.finish() => copied.context("writing output")?,
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
    render.finish().context("writing output")?;
    match run_error {
        Some(e) => anyhow::bail!("{e}"),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// `ig run IMAGE … --remote ADDRESS` and `--detach`.
pub fn run(
    args: Vec<String>,
    image: &str,
    remote: String,
    flags: ImageFlags,
) -> anyhow::Result<ExitCode> {
    let tokio = runtime()?;
    let remote: Remote = remote.parse()?;
    let path = |flag: &str| {
        scan_flag(&args, flag, true)
            .pop()
            .map(std::path::PathBuf::from)
    };
    let tls = client_tls(
        path("--tls-cert").as_deref(),
        path("--tls-key").as_deref(),
        path("--tls-server-ca").as_deref(),
    )?;
    let mut public_keys_pem = Vec::new();
    for p in &flags.public_keys {
        public_keys_pem
            .push(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?);
    }
    let image_opts = proto::ImageOptions {
        image: image.to_string(),
        pull: match flags.pull {
            PullPolicy::Always => "always",
            PullPolicy::Missing => "missing",
            PullPolicy::Never => "never",
        }
        .into(),
        verify: flags.verify,
        public_keys_pem,
        allowed_gadgets: flags.allowed.clone(),
        insecure_registries: flags.registry.insecure_registries.clone(),
    };
    tokio.block_on(async move {
        let mut client = connect(&remote, &tls).await?;
        let info = client
            .get_gadget_info(proto::GetGadgetInfoRequest {
                image: Some(image_opts.clone()),
            })
            .await
            .map_err(|s| status_error(&remote, s))?
            .into_inner();
        let params: Vec<ParamFlag> = info
            .params
            .iter()
            .map(|p| ParamFlag {
                key: p.key.clone(),
                description: p.description.clone(),
                is_bool: p.r#type == "bool",
                default: p.default_value.clone(),
            })
            .collect();
        let argv = std::iter::once("ig run".to_string()).chain(args.iter().cloned());
        let mut command = gadget_command(&params, info.flight_recorder)?;
        if info.array {
            command = with_array_flags(command);
        }
        let m = match command.try_get_matches_from(argv) {
            Ok(m) => m,
            Err(e) => return Ok(super::run::clap_exit(e)),
        };
        for flag in [
            "runtimes",
            "docker-socketpath",
            "containerd-socketpath",
            "podman-socketpath",
        ] {
            if m.value_source(flag) == Some(clap::parser::ValueSource::CommandLine) {
                anyhow::bail!(
                    "--{flag} is the daemon's: its container runtimes are set on `ig daemon`"
                );
            }
        }
        let (output, fields) = output_and_fields_of(&m)?;
        let mut spec = run_spec(&m, &params, image_opts, output);
        // Compact JSON of every field is the daemon's to write: the client only copies it out.
        spec.json_lines = output == OutputMode::Json && matches!(fields, FieldSelection::Default);
        if m.get_flag("detach") {
            return detach(&mut client, &remote, &m, spec).await;
        }
        for flag in ["name", "tags", "output-file", "output-max-size"] {
            if m.value_source(flag) == Some(clap::parser::ValueSource::CommandLine) {
                anyhow::bail!("--{flag} is for a detached instance: add --detach");
            }
        }
        // On this machine, the daemon writes the lines into a pipe of ours: a connection of
        // its own carries the pipe's write end.
        let mut lines = None;
        if spec.json_lines && matches!(remote, Remote::Unix(_)) && lines_pipe_wanted() {
            let (with_pipe, pipe) = connect_with_lines_pipe(&remote).await?;
            client = with_pipe;
            lines = Some(pipe);
            spec.lines_pipe_passed = true;
        }
        let (requests, rx) = tokio::sync::mpsc::channel(2);
        requests
            .send(proto::RunGadgetRequest {
                spec: Some(spec),
                stop: false,
            })
            .await
            .context("sending the run spec")?;
        let stream = client
            .run_gadget(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| status_error(&remote, s))?
            .into_inner();
        print_stream(
            &remote,
            stream,
            Render::new(output, fields),
            Some(requests),
            lines,
        )
        .await
    })
}

fn run_spec(
    m: &ArgMatches,
    params: &[ParamFlag],
    image: proto::ImageOptions,
    output: OutputMode,
) -> proto::RunSpec {
    proto::RunSpec {
        image: Some(image),
        params: param_values(m, params)
            .into_iter()
            .map(|(key, value)| proto::KeyValue { key, value })
            .collect(),
        host: m.get_flag("host"),
        containers: m
            .get_many::<String>("containername")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        syscall_filters: m
            .try_get_many::<String>("syscall-filters")
            .ok()
            .flatten()
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        filters: super::run::filters_of(m),
        json_lines: false,
        lines_pipe_passed: false,
        arrays: array_spec(m),
        timeout_ms: m.get_one::<u64>("timeout").map(|s| s * 1000).unwrap_or(0),
        max_events: m.get_one::<u64>("max-events").copied().unwrap_or(0),
        output: match output {
            OutputMode::Columns => "columns",
            OutputMode::Json => "json",
            OutputMode::JsonPretty => "jsonpretty",
            OutputMode::Yaml => "yaml",
        }
        .into(),
    }
}

/// The array flags (`--map-fetch-interval`, …) as the spec carries them; none when the
/// gadget has no arrays or none was given.
fn array_spec(m: &ArgMatches) -> Option<proto::ArrayOptions> {
    let a = array_options(m);
    a.any_set().then(|| proto::ArrayOptions {
        map_fetch_interval_ns: a
            .fetch_interval
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0),
        map_fetch_count: a.fetch_count,
        sort: a.sort,
        max_entries: a.max_entries.map(|n| n as u64),
    })
}

async fn detach(
    client: &mut Client,
    remote: &Remote,
    m: &ArgMatches,
    spec: proto::RunSpec,
) -> anyhow::Result<ExitCode> {
    let Some(name) = m.get_one::<String>("name") else {
        anyhow::bail!("--detach needs --name NAME: the instance is known by it");
    };
    let output_file = match m.get_one::<String>("output-file") {
        Some(path) => {
            // The daemon's working directory is not the client's.
            let path =
                std::path::absolute(path).with_context(|| format!("--output-file {path}"))?;
            Some(proto::OutputFile {
                path: path.display().to_string(),
                max_size_bytes: m
                    .get_one::<u64>("output-max-size")
                    .copied()
                    .unwrap_or(0)
                    .saturating_mul(1 << 20),
                max_backups: m.get_one::<u32>("output-max-backups").copied().unwrap_or(3),
            })
        }
        None if m.value_source("output-max-size")
            == Some(clap::parser::ValueSource::CommandLine) =>
        {
            anyhow::bail!("--output-max-size needs --output-file")
        }
        None => None,
    };
    let inst = client
        .create_instance(proto::CreateInstanceRequest {
            spec: Some(spec),
            name: name.clone(),
            tags: m
                .get_many::<String>("tags")
                .map(|v| v.filter(|t| !t.is_empty()).cloned().collect())
                .unwrap_or_default(),
            output_file,
        })
        .await
        .map_err(|s| status_error(remote, s))?
        .into_inner();
    println!("{}", inst.id);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// Output mode
    #[arg(short, long, default_value = "columns", value_parser = ["columns", "json", "jsonpretty"])]
    output: String,
    /// Show full instance ids
    #[arg(long)]
    no_trunc: bool,
}

fn gadget_of(inst: &proto::Instance) -> String {
    inst.spec
        .as_ref()
        .and_then(|s| s.image.as_ref())
        .map(|i| i.image.clone())
        .unwrap_or_default()
}

/// One unary call to the daemon: connect, call, the daemon's error as ours.
pub(crate) fn call<T, F, Fut>(args: &RemoteArgs, f: F) -> anyhow::Result<T>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    runtime()?.block_on(async {
        let (client, remote) = connect_args(args).await?;
        match f(client).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(status_error(&remote, s).into()),
        }
    })
}

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let instances = call(&args.remote, |mut c| async move {
        c.list_instances(proto::ListInstancesRequest {}).await
    })?
    .instances;
    match args.output.as_str() {
        "json" => println!("{}", ig::output::json_string(&instances, false)?),
        "jsonpretty" => println!("{}", ig::output::json_string(&instances, true)?),
        _ => {
            let mut table = print::table(&[
                "ID", "NAME", "TAGS", "GADGET", "STATUS", "EVENTS", "LOST", "MISSED",
            ]);
            for i in &instances {
                let id = if args.no_trunc {
                    i.id.clone()
                } else {
                    i.id.chars().take(12).collect()
                };
                let status = if i.error.is_empty() {
                    i.status.clone()
                } else {
                    format!("{}: {}", i.status, i.error)
                };
                print::row(
                    &mut table,
                    [
                        id,
                        i.name.clone(),
                        i.tags.join(","),
                        gadget_of(i),
                        status,
                        i.events.to_string(),
                        i.lost.to_string(),
                        i.missed_by_clients.to_string(),
                    ],
                );
            }
            println!("{table}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The instance: its name, id, or a unique id prefix
    instance: String,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Output mode
    #[arg(short, long, default_value = "columns", value_parser = ["columns", "json", "jsonpretty", "yaml"])]
    output: String,
    /// Fields to show: a,b,c for exactly those; +a,-b to add to or remove from the defaults
    #[arg(long, value_name = "LIST")]
    fields: Option<String>,
}

pub fn attach(args: AttachArgs) -> anyhow::Result<ExitCode> {
    let (mode, fields) = output_and_fields(&args.output, args.fields.as_deref())?;
    runtime()?.block_on(async {
        let (mut client, remote) = connect_args(&args.remote).await?;
        let stream = client
            .attach_instance(proto::InstanceSelector {
                selector: args.instance.clone(),
            })
            .await
            .map_err(|s| status_error(&remote, s))?
            .into_inner();
        print_stream(&remote, stream, Render::new(mode, fields), None, None).await
    })
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The instance: its name, id, or a unique id prefix
    instance: String,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Output mode
    #[arg(short, long, default_value = "yaml", value_parser = ["yaml", "json", "jsonpretty"])]
    output: String,
}

pub fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let selector = args.instance.clone();
    let inst = call(&args.remote, |mut c| async move {
        c.get_instance(proto::InstanceSelector { selector }).await
    })?;
    match args.output.as_str() {
        "json" => println!("{}", ig::output::json_string(&inst, false)?),
        "jsonpretty" => println!("{}", ig::output::json_string(&inst, true)?),
        _ => print!("{}", ig::output::yaml_string(&inst)?),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Instances: names, ids, or unique id prefixes
    #[arg(required = true)]
    instances: Vec<String>,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub fn delete(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    each_selector(
        &args.remote,
        &args.instances,
        |mut client, selector| async move {
            let r = client
                .delete_instance(proto::InstanceSelector { selector })
                .await?;
            Ok(r.into_inner().id)
        },
    )
}

/// One call per selector (`ig delete`, `ig traceloop close`): the id each call returns is
/// printed, each failure told on stderr; the exit code says whether any failed.
pub(crate) fn each_selector<F, Fut>(
    args: &RemoteArgs,
    selectors: &[String],
    mut call: F,
) -> anyhow::Result<ExitCode>
where
    F: FnMut(Client, String) -> Fut,
    Fut: std::future::Future<Output = Result<String, tonic::Status>>,
{
    runtime()?.block_on(async {
        let (client, remote) = connect_args(args).await?;
        let mut failed = false;
        for sel in selectors {
            match call(client.clone(), sel.clone()).await {
                Ok(id) => println!("{id}"),
                Err(s) => {
                    eprintln!(
                        "ig: error: {}: {}",
                        print::escape(sel),
                        print::escape(&status_error(&remote, s).to_string())
                    );
                    failed = true;
                }
            }
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}
