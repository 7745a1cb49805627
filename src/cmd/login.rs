//! `rbuild login` / `rbuild logout`: registry credentials through the
//! credential helper `~/.docker/config.json` names, else in that file,
//! shared with docker, podman and skopeo.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_registry::{Client, ClientOptions, Credentials};

/// `rbuild login` arguments, as `docker login`'s.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// User name.
    #[arg(short, long)]
    username: Option<String>,

    /// Password (prefer --password-stdin).
    #[arg(short, long)]
    password: Option<String>,

    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,

    /// The registry (`host[:port]`).
    server: String,
}

/// Checks the credentials against the registry, then stores them.
pub fn login(_root: &Path, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let username = args.username.context("give the user name with -u")?;
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("give the password with --password-stdin (or -p)"),
    };
    let creds = Credentials { username, password };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = Client::new(ClientOptions::default())?;
    runtime.block_on(client.login(&args.server, &creds))?;
    rbuild_registry::auth::store(&args.server, Some(&creds))?;
    outln!("Login Succeeded")?;
    Ok(ExitCode::SUCCESS)
}

/// `rbuild logout` arguments.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (`host[:port]`).
    server: String,
}

/// Forgets the registry's credentials.
pub fn logout(_root: &Path, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    rbuild_registry::auth::store(&args.server, None)?;
    outln!("Removing login credentials for {}", args.server)?;
    Ok(ExitCode::SUCCESS)
}
