//! `ig completion SHELL` and `ig man --dir DIR`: the shell completions and man pages, generated
//! from the clap definitions themselves (clap_complete, clap_mangen) so they never drift from the
//! flags; the .deb ships their output (packaging/debian/deb.sh).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell: bash, zsh, fish, elvish or powershell
    shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory to write the pages to (ig.1, ig-run.1, ig-image-build.1, …); created if missing
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

pub fn completion(args: CompletionArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    // Rendered first, written once: clap_complete panics on a failed write, and a closed pipe
    // (`ig completion bash | head`) must stay a quiet exit 0.
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "ig", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    clap_mangen::generate_to(super::Cli::command(), &args.dir)
        .with_context(|| format!("writing man pages to {}", args.dir.display()))?;
    Ok(ExitCode::SUCCESS)
}
