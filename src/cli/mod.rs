//! The `ig` command line: parse, call the library, print. `anyhow` lives here only.

mod daemon;
mod generate;
mod image;
mod login;
mod print;
mod remote;
mod run;
mod traceloop;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ig",
    version,
    about = "Container-aware eBPF gadget runtime",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a gadget: `ig run trace_exec [flags] [gadget params]` (see `ig run IMAGE --help`)
    #[command(disable_help_flag = true)]
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build, list, inspect, tag and remove gadget images
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Log in to a registry (credentials go to ig's own config.json)
    Login(login::LoginArgs),
    /// Log out of a registry
    Logout(login::LogoutArgs),
    /// Serve gadgets to clients: one daemon per machine (gRPC on a Unix socket, TCP with mTLS)
    Daemon(Box<daemon::DaemonArgs>),
    /// List the daemon's detached instances
    List(remote::ListArgs),
    /// Print a detached instance's kept events, then its live ones (Ctrl-C leaves it running)
    Attach(remote::AttachArgs),
    /// Show a detached instance: spec, parameters, status, counters
    Show(remote::ShowArgs),
    /// Stop and remove detached instances
    Delete(remote::DeleteArgs),
    /// The daemon's always-on syscall flight recorder: list, show and close traces
    #[command(subcommand)]
    Traceloop(traceloop::TraceloopCommand),
    /// Print a shell completion script (e.g. `ig completion bash > /etc/bash_completion.d/ig`)
    Completion(generate::CompletionArgs),
    /// Write the man pages (the .deb ships them)
    #[command(hide = true)]
    Man(generate::ManArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { args } => run::main(args),
        Command::Image(cmd) => image::main(cmd),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::Daemon(args) => daemon::main(*args),
        Command::List(args) => remote::list(args),
        Command::Attach(args) => remote::attach(args),
        Command::Show(args) => remote::show(args),
        Command::Delete(args) => remote::delete(args),
        Command::Traceloop(cmd) => traceloop::main(cmd),
        Command::Completion(args) => generate::completion(args),
        Command::Man(args) => generate::man(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            // An error can quote an image, a registry or the kernel: escaped, but its own
            // line breaks kept (compiler output spans lines).
            let text = error_text(&e);
            eprintln!(
                "ig: error: {}",
                ig::output::escape_except(&text, &['\n', '\t'])
            );
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes as `a: b: c`, leaving out a cause whose text the message before it
/// already quotes (library errors often include their source's text: "cannot read P: No such
/// file or directory" would otherwise end with it twice).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

pub(crate) fn open_store() -> anyhow::Result<ig::oci::Store> {
    let root = ig::oci::Store::default_root();
    ig::oci::Store::open(&root).map_err(|e| anyhow::anyhow!("{e}"))
}
