//! `ig login REGISTRY` / `ig logout REGISTRY`: credentials in ig's own Docker-style config.json.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};

use ig::oci::auth::{self, Credentials};
use ig::oci::registry::Registry;

use super::image::{block_on, RegistryArgs};

#[derive(clap::Args)]
pub struct LoginArgs {
    /// Registry host[:port]
    registry: String,
    /// User name
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password (prefer --password-stdin: command lines are visible to other users)
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from stdin
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry_args: RegistryArgs,
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    /// Registry host[:port]
    registry: String,
}

fn read_line(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt}");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("reading stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let username = match args.username {
        Some(u) => u,
        None => read_line("Username: ")?,
    };
    if username.is_empty() {
        bail!("a user name is needed (-u USER)");
    }
    let password = match args.password {
        Some(p) => p,
        None => read_line("Password: ")?,
    };
    if password.is_empty() {
        bail!("a password is needed (--password-stdin)");
    }
    let creds = Credentials { username, password };
    let opts = args.registry_args.options();
    let registry = Registry::for_login(&args.registry, creds.clone(), &opts)?;
    block_on(registry.ping())??;
    let path = auth::ig_config_path();
    auth::save(&path, &args.registry, &creds)?;
    println!(
        "Login to {} succeeded; credentials saved in {}",
        args.registry,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn logout(args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let path = auth::ig_config_path();
    if auth::remove(&path, &args.registry)? {
        println!(
            "Removed the credentials for {} from {}",
            args.registry,
            path.display()
        );
    } else {
        println!(
            "Not logged in to {} (nothing in {})",
            args.registry,
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
