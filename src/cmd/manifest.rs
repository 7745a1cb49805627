//! `rbuild manifest`: image indexes in a registry, as `docker buildx
//! imagetools` handles them: `inspect` prints an index or manifest,
//! `create` joins images already pushed (one per platform, often by
//! digest from native CI runners) into one index without pulling layers.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use rbuild_registry::{Client, ClientOptions, Reference};

/// `rbuild manifest` subcommands.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Print the index or manifest a reference names in its registry.
    Inspect(InspectArgs),
    /// Join images of one registry into an index and push it (`docker
    /// buildx imagetools create`): no layer is pulled, blobs of another
    /// repository are mounted.
    Create(CreateArgs),
}

/// `rbuild manifest inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bytes as the registry serves them, not reindented.
    #[arg(long)]
    raw: bool,

    /// The image (`host:port/repo:tag` or `…@sha256:…`).
    reference: String,
}

/// `rbuild manifest create` arguments.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The index's name (`host:port/repo:tag`).
    #[arg(short = 't', long = "tag", value_name = "REF")]
    tag: String,

    /// An annotation of the index (`KEY=VALUE`, `index:` prefix allowed);
    /// repeatable.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,

    /// Print only the index's digest.
    #[arg(short, long)]
    quiet: bool,

    /// The images to join: manifests (their platform read from their
    /// config) or indexes (every entry taken).
    #[arg(required = true)]
    sources: Vec<String>,
}

/// Runs a `rbuild manifest` subcommand.
pub fn run(command: ManifestCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let client = Client::new(ClientOptions::default())?;
    match command {
        ManifestCommand::Inspect(args) => {
            let reference = Reference::parse(&args.reference)?;
            let (_, bytes) = runtime.block_on(client.raw_manifest(&reference))?;
            if args.raw {
                outln!("{}", String::from_utf8_lossy(&bytes))?;
            } else {
                let doc: serde_json::Value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{reference}: not JSON"))?;
                outln!("{}", serde_json::to_string_pretty(&doc)?)?;
            }
        }
        ManifestCommand::Create(args) => {
            let target = Reference::parse(&args.tag)?;
            let sources = args
                .sources
                .iter()
                .map(|s| Reference::parse(s).with_context(|| format!("source {s}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let annotations = annotations(&args.annotations)?;
            let joined = runtime.block_on(rbuild_registry::join::join(
                &client,
                &target,
                &sources,
                &annotations,
            ))?;
            match args.quiet {
                true => outln!("{}", joined.digest)?,
                false => outln!("{target}: digest: {}", joined.digest)?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `KEY=VALUE` index annotations (an `index:` prefix is the default).
fn annotations(values: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|v| {
            let (k, val) = v
                .split_once('=')
                .with_context(|| format!("--annotation {v}: expected KEY=VALUE"))?;
            let k = k.strip_prefix("index:").unwrap_or(k);
            Ok((k.to_string(), val.to_string()))
        })
        .collect()
}
