//! `ig traceloop list|show|close`: clients of the daemon's always-on flight recorder.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use ig::daemon::proto;

use super::print;
use super::remote::{call, each_selector, RemoteArgs};

#[derive(Subcommand, Debug)]
pub enum TraceloopCommand {
    /// The traces the recorder holds: running and exited containers
    List(ListArgs),
    /// One trace's syscalls (a snapshot while its container runs; recording goes on)
    Show(ShowArgs),
    /// Free traces
    Close(CloseArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// Output mode
    #[arg(short, long, default_value = "columns", value_parser = ["columns", "json", "jsonpretty"])]
    output: String,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The trace: a container name, a trace id, or a unique id prefix
    trace: String,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Output mode
    #[arg(short, long, default_value = "columns", value_parser = ["columns", "json", "jsonpretty", "yaml"])]
    output: String,
    /// Only these syscalls (names, comma-separated)
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    syscall_filters: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CloseArgs {
    /// Traces: container names, trace ids, or unique id prefixes
    #[arg(required = true)]
    traces: Vec<String>,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub fn main(cmd: TraceloopCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TraceloopCommand::List(a) => list(a),
        TraceloopCommand::Show(a) => show(a),
        TraceloopCommand::Close(a) => close(a),
    }
}

fn time_of(unix_ns: i64) -> String {
    if unix_ns <= 0 {
        return String::new();
    }
    chrono::DateTime::from_timestamp(unix_ns / 1_000_000_000, (unix_ns % 1_000_000_000) as u32)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let resp = call(&args.remote, |mut c| async move {
        c.traceloop_list(proto::TraceloopListRequest {}).await
    })?;
    match args.output.as_str() {
        "json" => println!("{}", ig::output::json_string(&resp, false)?),
        "jsonpretty" => println!("{}", ig::output::json_string(&resp, true)?),
        _ => {
            let mut table = print::table(&[
                "ID",
                "CONTAINER",
                "RUNTIME",
                "POD",
                "STATE",
                "RECORDS",
                "FIRST",
                "LAST",
            ]);
            for t in &resp.traces {
                let state = match t.state.as_str() {
                    "exited" => format!("exited {}", time_of(t.exited_unix_ms * 1_000_000)),
                    s => s.to_string(),
                };
                let pod = if t.pod_name.is_empty() {
                    String::new()
                } else {
                    format!("{}/{}", t.pod_namespace, t.pod_name)
                };
                print::row(
                    &mut table,
                    [
                        t.id.chars().take(12).collect(),
                        t.container_name.clone(),
                        t.runtime.clone(),
                        pod,
                        state,
                        t.records.to_string(),
                        time_of(t.first_record_unix_ns),
                        time_of(t.last_record_unix_ns),
                    ],
                );
            }
            println!("{table}");
            let bound = resp.records_per_container as u64 * resp.record_size as u64;
            eprintln!(
                "ig: each trace keeps its last {} records ({} KiB); {} containers at a time, {} exited traces at most",
                resp.records_per_container,
                bound / 1024,
                resp.max_containers,
                resp.max_exited
            );
            if resp.dropped > 0 {
                eprintln!(
                    "ig: {} exited traces were dropped to keep at most {} (oldest first)",
                    resp.dropped, resp.max_exited
                );
            }
            if resp.lost_containers > 0 {
                eprintln!(
                    "ig: warning: {} syscalls of containers found no free buffer (raise --traceloop-max-containers)",
                    resp.lost_containers
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let request = proto::TraceloopShowRequest {
        trace: Some(proto::TraceSelector {
            selector: args.trace.clone(),
        }),
        output: args.output.clone(),
        syscall_filters: args.syscall_filters.clone(),
    };
    let resp = call(&args.remote, |mut c| async move {
        c.traceloop_show(request).await
    })?;
    let mut out = std::io::stdout().lock();
    match out.write_all(&resp.text).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn close(args: CloseArgs) -> anyhow::Result<ExitCode> {
    each_selector(
        &args.remote,
        &args.traces,
        |mut client, selector| async move {
            let t = client
                .traceloop_close(proto::TraceSelector { selector })
                .await?;
            Ok(t.into_inner().id)
        },
    )
}
