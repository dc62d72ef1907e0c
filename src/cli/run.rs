//! `ig run IMAGE`: the flags depend on the image (its parameters), so parsing happens in two
//! steps: find the image among the arguments, then build the full command from its spec.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command};

use std::io::IsTerminal;

use ig::containers::{ContainerCollection, RuntimeConfig, RuntimeKind};
use ig::gadget::spec::ParamType;
use ig::gadget::GadgetSpec;
use ig::oci::registry::RegistryOptions;
use ig::oci::transfer::{ensure_local, PullPolicy};
use ig::oci::Reference;
use ig::operators::fields::FieldSelection;
use ig::output::OutputMode;
use ig::run::{RunConfig, RunError};

/// Common flags that take a value, so the image is not mistaken for one.
const VALUE_FLAGS: [&str; 25] = [
    "--pull",
    "--public-key",
    "--insecure-registries",
    "--allowed-gadgets",
    "--syscall-filters",
    "-o",
    "--output",
    "--fields",
    "--timeout",
    "-c",
    "--containername",
    "--runtimes",
    "--docker-socketpath",
    "--containerd-socketpath",
    "--podman-socketpath",
    "--max-events",
    "--remote",
    "--tls-cert",
    "--tls-key",
    "--tls-server-ca",
    "--name",
    "--tags",
    "--output-file",
    "--output-max-size",
    "--output-max-backups",
];

fn common_command() -> Command {
    Command::new("run")
        .bin_name("ig run")
        .about("Run a gadget")
        .override_usage("ig run IMAGE [flags] [gadget params]")
        .disable_help_flag(true)
        .arg(Arg::new("image").value_name("IMAGE").help("Gadget image: a name (trace_exec) or a full reference"))
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .value_name("MODE")
                .default_value("columns")
                .value_parser(["columns", "json", "jsonpretty", "yaml"])
                .help("Output mode"),
        )
        .arg(Arg::new("fields").long("fields").value_name("LIST").help(
            "Fields to show: a,b,c for exactly those; +a,-b to add to or remove from the defaults",
        ))
        .arg(
            Arg::new("filter")
                .short('F')
                .long("filter")
                .value_name("EXPR")
                .action(ArgAction::Append)
                .help("Only events where EXPR holds: field==v, !=, <, <=, >, >=, field~regex; a comma joins conditions (\\, is a comma); any field, e.g. runtime.containerName==web, args~--debug"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("SECONDS")
                .allow_negative_numbers(true)
                .value_parser(count("seconds"))
                .help("Stop after this many seconds (0: no timeout)"),
        )
        .arg(
            Arg::new("max-events")
                .long("max-events")
                .value_name("N")
                .allow_negative_numbers(true)
                .value_parser(count("events"))
                .help("Stop after this many events (0: no limit)"),
        )
        .arg(
            Arg::new("host")
                .long("host")
                .action(ArgAction::SetTrue)
                .help("Also show processes that run outside containers"),
        )
        .arg(
            Arg::new("containername")
                .short('c')
                .long("containername")
                .value_name("NAME")
                .action(ArgAction::Append)
                .value_delimiter(',')
                .help("Only these containers (repeat or comma-separate)"),
        )
        .arg(
            Arg::new("runtimes")
                .long("runtimes")
                .value_name("LIST")
                .default_value(ig::containers::DEFAULT_RUNTIMES)
                .help("Container runtimes to use (docker, containerd, podman); a missing one is skipped unless named here (podman silently when its socket does not exist)"),
        )
        .arg(
            Arg::new("docker-socketpath")
                .long("docker-socketpath")
                .value_name("PATH")
                .default_value("/var/run/docker.sock")
                .help("Docker engine socket"),
        )
        .arg(
            Arg::new("containerd-socketpath")
                .long("containerd-socketpath")
                .value_name("PATH")
                .default_value("/run/containerd/containerd.sock")
                .help("containerd socket"),
        )
        .arg(
            Arg::new("podman-socketpath")
                .long("podman-socketpath")
                .value_name("PATH")
                .default_value("/run/podman/podman.sock")
                .help("podman's Docker-compatible API socket (podman system service)"),
        )
        .next_help_heading("Daemon")
        .arg(
            Arg::new("remote")
                .long("remote")
                .value_name("ADDRESS")
                .env("IG_REMOTE")
                .help("Run in the ig daemon at unix:///PATH or tcp://HOST:PORT"),
        )
        .arg(Arg::new("tls-cert").long("tls-cert").value_name("PEM").help("Client certificate for a tcp:// daemon"))
        .arg(Arg::new("tls-key").long("tls-key").value_name("PEM").help("Key of --tls-cert"))
        .arg(Arg::new("tls-server-ca").long("tls-server-ca").value_name("PEM").help("CA of the daemon's certificate"))
        .arg(
            Arg::new("detach")
                .long("detach")
                .action(ArgAction::SetTrue)
                .help("Start a detached instance in the daemon (default socket unless --remote) and print its id"),
        )
        .arg(Arg::new("name").long("name").value_name("NAME").help("The detached instance's name"))
        .arg(
            Arg::new("tags")
                .long("tags")
                .value_name("LIST")
                .value_delimiter(',')
                .action(ArgAction::Append)
                .help("Tags of the detached instance"),
        )
        .arg(Arg::new("output-file").long("output-file").value_name("PATH").help("A detached instance also writes its events to this JSON-lines file"))
        .arg(
            Arg::new("output-max-size")
                .long("output-max-size")
                .value_name("MB")
                .value_parser(clap::value_parser!(u64))
                .help("Rotate --output-file at this size (0: never)"),
        )
        .arg(
            Arg::new("output-max-backups")
                .long("output-max-backups")
                .value_name("N")
                .value_parser(clap::value_parser!(u32))
                .default_value("3")
                .help("Rotated files kept (PATH.1 … PATH.N)"),
        )
        .next_help_heading("Image")
        .arg(
            Arg::new("pull")
                .long("pull")
                .value_name("POLICY")
                .default_value("missing")
                .value_parser(["always", "missing", "never"])
                .help("When to pull the image from its registry"),
        )
        .arg(
            Arg::new("verify-image")
                .long("verify-image")
                .value_name("BOOL")
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .default_value("true")
                .value_parser(["true", "false"])
                .help("Refuse images not signed by a trusted key (--verify-image=false to run anyway)"),
        )
        .arg(
            Arg::new("public-key")
                .long("public-key")
                .value_name("PEM")
                .action(ArgAction::Append)
                .help("Trusted public key file (default: $IG_PUBLIC_KEYS, /etc/ig/public-keys.pem, ~/.config/ig/public-keys.pem)"),
        )
        .arg(
            Arg::new("insecure-registries")
                .long("insecure-registries")
                .value_name("HOST:PORT")
                .value_delimiter(',')
                .action(ArgAction::Append)
                .help("Registries spoken to over plain HTTP"),
        )
        .arg(
            Arg::new("allowed-gadgets")
                .long("allowed-gadgets")
                .value_name("LIST")
                .value_delimiter(',')
                .action(ArgAction::Append)
                .help("Only these images may run: exact references or prefix*"),
        )
        .arg(Arg::new("help").short('h').long("help").action(ArgAction::Help).help("Print help"))
}

/// Values of a common flag, read before the full parse (which needs the image): `--f v`,
/// `--f=v`, comma lists. A bare boolean flag reads as "true".
/// A limit given as a whole number; negative values are taken as values (not as flags, which
/// would earn clap's tip to write `-- -5`) and refused with the unit named.
fn count(unit: &'static str) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("expected a whole number of {unit}, 0 or more (0: no limit)"))
    }
}

pub(crate) fn scan_flag(args: &[String], flag: &str, takes_value: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            out.extend(v.split(',').map(str::to_string));
        } else if a == flag {
            match (takes_value, it.next()) {
                (true, Some(v)) => out.extend(v.split(',').map(str::to_string)),
                (true, None) => {}
                (false, _) => out.push("true".into()),
            }
        }
    }
    out
}

/// What must be settled before the image is read: allow-list, pull, registry transport.
pub(crate) struct ImageFlags {
    pub pull: PullPolicy,
    pub verify: bool,
    pub public_keys: Vec<std::path::PathBuf>,
    pub allowed: Vec<String>,
    pub registry: RegistryOptions,
}

impl ImageFlags {
    fn scan(args: &[String]) -> anyhow::Result<Self> {
        let pull = match scan_flag(args, "--pull", true).last() {
            Some(p) => p.parse().map_err(|e| anyhow::anyhow!("--pull: {e}"))?,
            None => PullPolicy::Missing,
        };
        let verify = match scan_flag(args, "--verify-image", false)
            .last()
            .map(String::as_str)
        {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => anyhow::bail!("--verify-image takes true or false, not {other:?}"),
        };
        let mut allowed = scan_flag(args, "--allowed-gadgets", true);
        if allowed.is_empty() {
            if let Ok(env) = std::env::var("IG_ALLOWED_GADGETS") {
                allowed = env
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
        }
        let mut insecure = scan_flag(args, "--insecure-registries", true);
        if let Ok(env) = std::env::var("IG_INSECURE_REGISTRIES") {
            insecure.extend(env.split(',').filter(|s| !s.is_empty()).map(str::to_string));
        }
        Ok(ImageFlags {
            pull,
            verify,
            public_keys: scan_flag(args, "--public-key", true)
                .into_iter()
                .map(Into::into)
                .collect(),
            allowed,
            registry: RegistryOptions {
                insecure_registries: insecure,
                progress: std::io::stderr().is_terminal(),
                ..RegistryOptions::default()
            },
        })
    }
}

/// A gadget parameter as a flag, from a local image's spec or a daemon's answer.
pub(crate) struct ParamFlag {
    pub key: String,
    pub description: String,
    pub is_bool: bool,
    pub default: String,
}

impl ParamFlag {
    fn of_spec(spec: &GadgetSpec) -> Vec<ParamFlag> {
        spec.params
            .iter()
            .map(|p| ParamFlag {
                key: p.key.clone(),
                description: p.description.clone(),
                is_bool: matches!(p.ty, ParamType::Bool),
                default: p.default.clone(),
            })
            .collect()
    }
}

/// `ig run`'s command with the gadget's parameters as flags.
///
/// Errors: a key that cannot be a flag (one of ig's, malformed, given twice): the daemon's
/// answer is checked as a local image is, so a clap panic cannot happen here.
pub(crate) fn gadget_command(
    params: &[ParamFlag],
    flight_recorder: bool,
) -> Result<Command, ig::gadget::GadgetError> {
    ig::gadget::param_keys::check_keys(params.iter().map(|p| p.key.as_str()))?;
    let mut cmd = common_command().next_help_heading("Gadget parameters");
    for p in params {
        let mut arg = Arg::new(p.key.clone())
            .long(p.key.clone())
            .help(p.description.clone());
        arg = match p.is_bool {
            true => arg
                .value_name("BOOL")
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .value_parser(["true", "false"]),
            false => arg.value_name("VALUE"),
        };
        if !p.default.is_empty() {
            arg = arg.default_value(p.default.clone());
        }
        cmd = cmd.arg(arg);
    }
    if flight_recorder {
        cmd = cmd.arg(
            Arg::new("syscall-filters")
                .long("syscall-filters")
                .value_name("LIST")
                .value_delimiter(',')
                .action(ArgAction::Append)
                .help("Record only these syscalls (names, comma-separated)"),
        );
    }
    Ok(cmd)
}

/// The flags of gadgets whose data comes in arrays (map and BPF iterators).
pub(crate) fn with_array_flags(cmd: Command) -> Command {
    cmd.next_help_heading("Arrays (map and BPF iterators)")
        .arg(
            Arg::new("map-fetch-interval")
                .long("map-fetch-interval")
                .value_name("DURATION")
                .value_parser(ig::run::array_opts::parse_interval)
                .help("Time between two reads of the gadget's map (500ms, 1s, 2m; default 1s; a BPF iterator: at once)"),
        )
        .arg(
            Arg::new("map-fetch-count")
                .long("map-fetch-count")
                .value_name("N")
                .allow_negative_numbers(true)
                .value_parser(count("reads"))
                .help("Reads before stopping; 0: until stopped (default 0; a BPF iterator: 1, a snapshot)"),
        )
        .arg(
            Arg::new("sort")
                .long("sort")
                .value_name("FIELDS")
                .allow_hyphen_values(true)
                .action(ArgAction::Append)
                .help("Sort each array by these fields, comma-separated; -field for descending"),
        )
        .arg(
            Arg::new("max-entries")
                .long("max-entries")
                .value_name("N")
                .allow_negative_numbers(true)
                .value_parser(count("rows"))
                .help("Show at most N rows of each array (after sorting)"),
        )
}

/// [`ArrayOptions`](ig::run::array_opts::ArrayOptions) from `ig run`'s matches (empty when
/// the command has no array flags).
pub(crate) fn array_options(m: &ArgMatches) -> ig::run::array_opts::ArrayOptions {
    ig::run::array_opts::ArrayOptions {
        fetch_interval: m
            .try_get_one::<Duration>("map-fetch-interval")
            .ok()
            .flatten()
            .copied(),
        fetch_count: m
            .try_get_one::<u64>("map-fetch-count")
            .ok()
            .flatten()
            .copied(),
        sort: m
            .try_get_many::<String>("sort")
            .ok()
            .flatten()
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        max_entries: m
            .try_get_one::<u64>("max-entries")
            .ok()
            .flatten()
            .map(|n| usize::try_from(*n).unwrap_or(usize::MAX)),
    }
}

/// The digest `ig run` may load (built-ins as they are, anything else signed by a trusted key).
fn verify_image(
    store: &ig::oci::Store,
    reference: &Reference,
    keys: &[std::path::PathBuf],
) -> anyhow::Result<String> {
    let keys = ig::oci::verify::load_public_keys(keys)?;
    Ok(ig::run::verified_digest(store, reference, &keys)?)
}

/// `--runtimes` with their sockets; a runtime named on the command line (not by default) must
/// answer.
pub(crate) fn runtime_configs(m: &ArgMatches) -> anyhow::Result<Vec<RuntimeConfig>> {
    let explicit = m.value_source("runtimes") == Some(clap::parser::ValueSource::CommandLine);
    let list = m
        .get_one::<String>("runtimes")
        .map(String::as_str)
        .unwrap_or("");
    let mut configs = Vec::new();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "none")
    {
        let kind: RuntimeKind = name.parse()?;
        let socket_flag = format!("{}-socketpath", kind.as_str());
        let socket_explicit =
            m.value_source(&socket_flag) == Some(clap::parser::ValueSource::CommandLine);
        let mut config = RuntimeConfig::new(kind).explicit(explicit || socket_explicit);
        // The flag's default is for --help: the default socket is looked for in its usual
        // places (under HOST_ROOT when set) by `RuntimeConfig::new`.
        if let Some(path) = m
            .get_one::<String>(&socket_flag)
            .filter(|_| socket_explicit)
        {
            config = config.socket(path);
        }
        configs.push(config);
    }
    Ok(configs)
}

/// The first argument that is not a flag nor a common flag's value.
fn find_image(args: &[String]) -> Option<&str> {
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if VALUE_FLAGS.contains(&a.as_str()) {
            skip = true;
            continue;
        }
        if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

/// `-o MODE` and `--fields LIST` as the output sinks take them.
pub(crate) fn output_and_fields(
    output: &str,
    fields: Option<&str>,
) -> anyhow::Result<(OutputMode, FieldSelection)> {
    let output = OutputMode::parse(output).map_err(anyhow::Error::msg)?;
    let fields = match fields {
        Some(f) => FieldSelection::parse(f).map_err(anyhow::Error::msg)?,
        None => FieldSelection::Default,
    };
    Ok((output, fields))
}

/// [`output_and_fields`] of `ig run`'s matches.
pub(crate) fn output_and_fields_of(m: &ArgMatches) -> anyhow::Result<(OutputMode, FieldSelection)> {
    output_and_fields(
        m.get_one::<String>("output")
            .map(String::as_str)
            .unwrap_or("columns"),
        m.get_one::<String>("fields").map(String::as_str),
    )
}

fn to_config(m: &ArgMatches, params: &[ParamFlag], image: Reference) -> anyhow::Result<RunConfig> {
    let (output, fields) = output_and_fields_of(m)?;
    let params = param_values(m, params);
    Ok(RunConfig {
        image,
        output,
        fields,
        // 0 is no limit, as in Inspektor Gadget (and as a remote run sends it).
        timeout: m
            .get_one::<u64>("timeout")
            .filter(|s| **s > 0)
            .map(|s| Duration::from_secs(*s)),
        host: m.get_flag("host"),
        containers: m
            .get_many::<String>("containername")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        params,
        max_events: m.get_one::<u64>("max-events").copied().filter(|n| *n > 0),
        expected_digest: None,
        filters: filters_of(m),
        syscall_filters: m
            .try_get_many::<String>("syscall-filters")
            .ok()
            .flatten()
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        arrays: array_options(m),
    })
}

/// The `--filter` expressions, in order.
pub(crate) fn filters_of(m: &ArgMatches) -> Vec<String> {
    m.get_many::<String>("filter")
        .map(|v| v.cloned().collect())
        .unwrap_or_default()
}

/// The gadget parameters' values; defaults from gadget.yaml apply too: they may differ from
/// the compiled ones.
pub(crate) fn param_values(m: &ArgMatches, params: &[ParamFlag]) -> Vec<(String, String)> {
    params
        .iter()
        .filter_map(|p| {
            m.get_one::<String>(&p.key)
                .map(|v| (p.key.clone(), v.clone()))
        })
        .collect()
}

pub fn main(args: Vec<String>) -> anyhow::Result<ExitCode> {
    let argv = std::iter::once("ig run".to_string()).chain(args.iter().cloned());
    let Some(image) = find_image(&args) else {
        if let Err(e) = common_command().try_get_matches_from(argv) {
            return Ok(clap_exit(e));
        }
        anyhow::bail!("missing IMAGE: which gadget to run, e.g. `ig run trace_exec`");
    };
    let reference = Reference::parse(image)?;
    let flags = ImageFlags::scan(&args)?;
    let remote = scan_flag(&args, "--remote", true)
        .pop()
        .or_else(|| std::env::var("IG_REMOTE").ok().filter(|r| !r.is_empty()));
    let detach = !scan_flag(&args, "--detach", false).is_empty();
    if remote.is_some() || detach {
        let remote = remote.unwrap_or_else(|| format!("unix://{}", ig::daemon::DEFAULT_SOCKET));
        let image = image.to_string();
        return super::remote::run(args.clone(), &image, remote, flags);
    }
    // The allow-list comes before anything is pulled or loaded.
    ig::oci::allow::check(&reference, &flags.allowed)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = super::open_store()?;
    ig::builtin::seed_if_builtin(&store, &reference)?;
    let local = store.resolve(&reference.to_string())?.is_some();
    tokio
        .block_on(ensure_local(
            &store,
            &reference,
            flags.pull,
            &flags.registry,
        ))
        .with_context(|| match (local, flags.pull) {
            (false, PullPolicy::Never) => {
                format!("{reference} is not in the local store (--pull never)")
            }
            (false, _) => format!("{reference} is not in the local store and pulling it failed"),
            (true, _) => format!("pulling {reference} failed"),
        })?;
    let prepared =
        ig::run::prepare(&store, &reference).with_context(|| format!("cannot run {image}"))?;
    let params = ParamFlag::of_spec(&prepared.spec);
    let flight_recorder = prepared.spec.recorder().is_some();
    let mut command = gadget_command(&params, flight_recorder)?;
    if prepared.spec.is_array_gadget() {
        command = with_array_flags(command);
    }
    let matches = match command.try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => return Ok(clap_exit(e)),
    };
    for daemon_only in ["name", "tags", "output-file", "output-max-size"] {
        if matches.value_source(daemon_only) == Some(clap::parser::ValueSource::CommandLine) {
            anyhow::bail!("--{daemon_only} is for a detached instance: add --detach");
        }
    }
    let mut config = to_config(&matches, &params, reference)?;
    drop(prepared);
    if flags.verify {
        config.expected_digest = Some(verify_image(&store, &config.image, &flags.public_keys)?);
    }

    let runtimes = runtime_configs(&matches)?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        register_stop(sig, &stop)?;
    }
    // Connecting runs on the async runtime while the gadget loads; the run waits for it then.
    let connecting =
        (!runtimes.is_empty()).then(|| tokio.spawn(ContainerCollection::start(runtimes)));
    let handle = tokio.handle().clone();
    // Ctrl-C and --timeout hold while the runtimes are still being listed: the run then stops
    // as it would have (nothing is traced) instead of waiting for them.
    let (stop_waiting, begun, timeout) = (stop.clone(), std::time::Instant::now(), config.timeout);
    let connect: ig::run::ConnectContainers<'_> = Box::new(move || {
        let Some(mut connecting) = connecting else {
            return Ok(None);
        };
        let deadline = timeout.map(|t| begun + t);
        let done = handle.block_on(async {
            loop {
                tokio::select! {
                    r = &mut connecting => return Some(r),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {
                        if stop_waiting.load(Ordering::Relaxed)
                            || deadline.is_some_and(|d| std::time::Instant::now() >= d)
                        {
                            return None;
                        }
                    }
                }
            }
        });
        let Some(done) = done else {
            connecting.abort();
            if !stop_waiting.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "ig: warning: --timeout ({}s) passed while the container runtimes were still listing their containers; stopping",
                    timeout.map(|t| t.as_secs()).unwrap_or(0)
                );
            }
            return Ok(None);
        };
        let (collection, notices) = done
            .map_err(|e| RunError::Containers(format!("connecting to the runtimes: {e}")))?
            .map_err(|e| RunError::Containers(e.to_string()))?;
        for n in notices {
            eprintln!("ig: {n}");
        }
        Ok(Some((collection, handle)))
    });
    ig::run::run(&store, &config, connect, &stop, &ig::run::Terminal)?;
    tokio.shutdown_background();
    Ok(ExitCode::SUCCESS)
}

/// What clap's own exit would do: help and version on stdout with 0, usage errors on stderr
/// with 2.
pub(crate) fn clap_exit(e: clap::Error) -> ExitCode {
    let code = if e.use_stderr() { 2 } else { 0 };
    let _ = e.print();
    ExitCode::from(code)
}

static STOP_FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

extern "C" fn on_signal(_: i32) {
    if let Some(flag) = STOP_FLAG.get() {
        flag.store(true, Ordering::Relaxed);
    }
}

/// Ctrl-C and SIGTERM only raise a flag; the run loop notices it within one poll interval and
/// stops cleanly (detach, drain, report losses).
pub(crate) fn register_stop(sig: i32, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let _ = STOP_FLAG.set(stop.clone());
    // SAFETY: the handler only does an atomic store, which is async-signal-safe.
    let prev = unsafe { libc::signal(sig, on_signal as extern "C" fn(i32) as libc::sighandler_t) };
    if prev == libc::SIG_ERR {
        anyhow::bail!("cannot install the handler for signal {sig}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{find_image, gadget_command};

    #[test]
    fn reserved_param_keys_are_exactly_ig_runs_arguments() {
        let cmd = super::with_array_flags(gadget_command(&[], true).unwrap());
        let mut ids: Vec<String> = cmd
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .chain(["version".to_string()])
            .collect();
        ids.sort();
        let mut reserved: Vec<String> = ig::gadget::param_keys::RESERVED_KEYS
            .iter()
            .map(|k| k.to_string())
            .collect();
        reserved.sort();
        assert_eq!(ids, reserved);
        for a in cmd.get_arguments() {
            if let Some(long) = a.get_long() {
                assert_eq!(long, a.get_id().as_str());
            }
        }
    }

    #[test]
    fn common_command_is_valid() {
        super::common_command().debug_assert();
    }

    #[test]
    fn image_is_first_non_flag() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            find_image(&a(&["-o", "json", "trace_exec", "--uid", "5"])),
            Some("trace_exec")
        );
        assert_eq!(
            find_image(&a(&["--host", "trace_exec"])),
            Some("trace_exec")
        );
        assert_eq!(find_image(&a(&["--host"])), None);
    }
}
