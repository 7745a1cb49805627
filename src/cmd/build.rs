//! `rbuild build` (and `rbuild PATH`): the arguments become a build
//! request for the library ([`rbuild_build::build`]); progress and the
//! result are shown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_build::epoch::SourceDateEpoch;
use rbuild_build::runflags::BuildNetwork;
use rbuild_build::runopts;
use rbuild_build::{BuildRequest, CancelToken, Entitlement, Output, Session, local};
use rbuild_executor::Ulimit;
use rbuild_frontend::graph::SandboxExtras;
use rbuild_image::Platform;
use rbuild_registry::ClientOptions;

use super::limits::LimitArgs;
use super::output;
use super::remote;
use super::secrets::Secrets;
use super::stdin::{self, BuildInputs};
use crate::progress::{Display, Mode};
use crate::rawjson::RawJson;

/// `rbuild build` arguments, named as `docker build`'s.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory, or `-`: standard input, a tar (plain,
    /// gzip or zstd) or a Dockerfile alone (an empty context); or a URL:
    /// a git repository (`URL.git#REF:SUBDIR`) or a file over HTTP.
    #[arg(value_name = "PATH|-")]
    context: PathBuf,

    /// The Dockerfile (default: PATH/Dockerfile), or `-` for standard
    /// input.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,

    /// Name and optionally tag the image (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,

    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,

    /// Build this stage (default: the last one).
    #[arg(long)]
    target: Option<String>,

    /// Do not use cached results.
    #[arg(long)]
    no_cache: bool,

    /// Build from this cache where the store has no result (repeatable,
    /// the first source first): `type=registry,ref=REF` (or just `REF`),
    /// `type=local,src=DIR[,tag=TAG]`.
    #[arg(long = "cache-from", value_name = "REF|type=TYPE,...")]
    cache_from: Vec<String>,

    /// Write the build cache after the build (repeatable):
    /// `type=registry,ref=REF` or `type=local,dest=DIR[,tag=TAG]`, with
    /// `mode=min|max`, `compression=zstd|gzip|uncompressed`,
    /// `compression-level=N`, `oci-mediatypes=`, `ignore-error=true`,
    /// `registry.insecure=true` (plain HTTP), or `type=inline`.
    #[arg(long = "cache-to", value_name = "type=TYPE,...")]
    cache_to: Vec<String>,

    /// Do not use cached results for this stage's steps (nor for what
    /// depends on them); repeatable.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    no_cache_filter: Vec<String>,

    /// Resolve every base image at its registry, whatever the store holds.
    #[arg(long)]
    pull: bool,

    /// What `FROM NAME` and `COPY --from=NAME` use instead of the image
    /// NAME: `NAME=docker-image://REF`, `NAME=DIR` or `NAME=URL` (git or
    /// HTTP, as a context); repeatable.
    #[arg(long = "build-context", value_name = "NAME=SOURCE")]
    build_contexts: Vec<String>,

    /// The network of every RUN without `--network`: `default` (also
    /// `bridge`), `host` (granted for the build, as buildx grants it) or
    /// `none`.
    #[arg(long, value_name = "MODE", value_parser = ["default", "bridge", "host", "none"])]
    network: Option<String>,

    /// An /etc/hosts entry of every RUN (`NAME:IP`); repeatable.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_hosts: Vec<String>,

    /// A process limit of every RUN (`nofile=1024[:2048]`); repeatable.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    ulimits: Vec<String>,

    /// The size of every RUN's /dev/shm (`64m`, the default).
    #[arg(long = "shm-size", value_name = "SIZE")]
    shm_size: Option<String>,

    /// Progress output (default: `$BUILDKIT_PROGRESS`, else `auto`).
    #[arg(long, value_enum, default_value = "auto", env = "BUILDKIT_PROGRESS")]
    progress: Mode,

    /// Print only the image id (config digest) on success.
    #[arg(short, long)]
    quiet: bool,

    /// A secret for `RUN --mount=type=secret`: `id=ID,src=PATH`,
    /// `id=ID,env=VAR`, or `id=ID` (the variable ID if set, else the file
    /// ID); repeatable.
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    secrets: Vec<String>,

    /// Where the result goes: `type=image|registry|oci|docker|local|tar`
    /// with `dest=`, `push=true`, `name=`… (repeatable; default: the store).
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH")]
    outputs: Vec<String>,

    /// Push the image to its registry (shorthand for `--output type=registry`).
    #[arg(long)]
    push: bool,

    /// Push the image untagged, by digest only, and show the digest (for
    /// `rbuild manifest create`; `--output type=registry,push-by-digest=true`).
    #[arg(long = "push-by-digest")]
    push_by_digest: bool,

    /// Set a label of the image (`KEY=VALUE`, or `KEY` for an empty
    /// value), over the Dockerfile's LABELs; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,

    /// Accepted as `docker buildx build --load`: the image always goes to
    /// the store, the only builder (one notice).
    #[arg(long)]
    load: bool,

    /// Accepted as `docker buildx build --builder`: the store is the only
    /// builder (one notice).
    #[arg(long, value_name = "NAME")]
    builder: Option<String>,

    /// Provenance attestations: only `false` (none are made; `true` and
    /// modes are refused).
    #[arg(long, value_name = "false", num_args = 0..=1, default_missing_value = "true")]
    provenance: Option<String>,

    /// SBOM attestations: only `false` (none are made; `true` is refused).
    #[arg(long, value_name = "false", num_args = 0..=1, default_missing_value = "true")]
    sbom: Option<String>,

    /// Target platforms (`linux/amd64,linux/arm64`, comma list,
    /// repeatable; the host's by default). Several make an image index
    /// with one manifest per platform.
    #[arg(long = "platform", value_name = "PLATFORMS")]
    platforms: Vec<String>,

    /// Add an annotation (`KEY=VALUE`; `index:KEY=VALUE` on a
    /// multi-platform image's index, `manifest[os/arch]:KEY=VALUE` on one
    /// platform's manifest); repeatable.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,

    /// Write the image id (config digest) to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,

    /// Write the build result (digests, tags, and why each step that ran
    /// was not cached) as JSON to this file.
    #[arg(long = "metadata-file", value_name = "FILE")]
    metadata_file: Option<PathBuf>,

    /// After the build, print a table of its steps: ran or cached, and
    /// for each that ran, what changed since the previous build.
    #[arg(long)]
    explain: bool,

    /// Grant an entitlement: `security.insecure` lets `RUN
    /// --security=insecure` run, `network.host` lets `RUN --network=host`
    /// use the host's network (as BuildKit's `--allow`); repeatable.
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_parser = ["security.insecure", "network.host"])]
    allow: Vec<String>,

    /// An ssh agent for `RUN --mount=type=ssh`: `default` (the agent of
    /// `$SSH_AUTH_SOCK`) or `ID=SOCKET`; repeatable.
    #[arg(long = "ssh", value_name = "default|ID=SOCKET")]
    ssh: Vec<String>,

    #[command(flatten)]
    limits: LimitArgs,

    /// How many RUN steps may run at once (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// File times in layers are clamped to this time and `created` is it
    /// (seconds since 1970), or `none` for the real times. Default: the
    /// `SOURCE_DATE_EPOCH` variable, else the HEAD commit's time when the
    /// context is a git work tree.
    #[arg(long = "source-date-epoch", value_name = "SECONDS|none")]
    source_date_epoch: Option<String>,
}

/// Runs a build.
pub fn run(root: &Path, args: BuildArgs, cancel: &CancelToken) -> anyhow::Result<ExitCode> {
    let mode = if args.quiet {
        Mode::Quiet
    } else {
        args.progress.resolve()
    };
    let raw = (mode == Mode::Rawjson).then(|| Arc::new(RawJson::default()));
    let display = Arc::new(Display::new(mode));
    refuse_attestations(&args)?;
    if args.load || args.builder.is_some() {
        eprintln!(
            "notice: rbuild has one builder, its store: the image is in it (--load and --builder change nothing)"
        );
    }
    // Kept until the build ends: secrets from the environment live in
    // files of its own.
    let secrets = Secrets::parse(&args.secrets)?;
    // Kept until the build ends too: what standard input gave.
    let inputs = stdin::read(&args.context, args.file.as_deref())?;
    // Kept until the build ends too: named contexts fetched from URLs.
    let (named_contexts, _fetched) = remote::named_contexts(&args.build_contexts)?;
    let mut request = request(&args, &inputs, &secrets)?;
    request.named_contexts = named_contexts;
    // Cache registries marked `registry.insecure=true` may be plain HTTP.
    let insecure_registries = (request.cache_from.iter())
        .filter_map(|c| c.insecure_registry())
        .chain(
            request
                .cache_to
                .iter()
                .filter_map(|c| c.insecure_registry()),
        )
        .collect();
    let session = Session::open(
        root,
        ClientOptions {
            insecure_registries,
            ..ClientOptions::default()
        },
    )?;
    let events: rbuild_build::EventSink = match raw {
        Some(raw) => Arc::new(move |event| raw.show(event)),
        None => {
            let display = display.clone();
            Arc::new(move |event| display.show(event))
        }
    };
    let built = rbuild_build::build(&session, &request, events, cancel);
    display.finish();
    let result = match built {
        Ok(result) => result,
        Err(e) => {
            show_failed_instruction(&request.dockerfile, &e);
            return Err(e.into());
        }
    };
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &result.image_id)
            .with_context(|| format!("write {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        std::fs::write(path, result.metadata_json())
            .with_context(|| format!("write {}", path.display()))?;
    }
    if args.explain {
        eprint!("{}", crate::summary::table(&result.steps));
    }
    // `-q` never mixes into a tar written to standard output.
    let stdout_taken = request.outputs.iter().any(Output::writes_stdout);
    if args.quiet && !stdout_taken {
        outln!("{}", result.image_id)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Under a failed step's error, the Dockerfile's lines of its instruction
/// (BuildKit's excerpt), when the Dockerfile can still be read.
fn show_failed_instruction(dockerfile: &Path, error: &rbuild_build::BuildError) {
    let Some(location) = error.step_location() else {
        return;
    };
    let Ok(source) = std::fs::read(dockerfile) else {
        return;
    };
    let name = dockerfile.file_name().map_or_else(
        || dockerfile.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    if let Some(text) = crate::excerpt::render(&name, &String::from_utf8_lossy(&source), location) {
        eprint!("{text}");
    }
}

/// The build request the arguments ask for.
fn request(
    args: &BuildArgs,
    inputs: &BuildInputs,
    secrets: &Secrets,
) -> anyhow::Result<BuildRequest> {
    let tags = args
        .tags
        .iter()
        .map(|t| local::store_name(t).with_context(|| format!("invalid tag {t:?}")))
        .collect::<anyhow::Result<_>>()?;
    let mut outputs = args
        .outputs
        .iter()
        .map(|o| output::parse(o))
        .collect::<anyhow::Result<Vec<Output>>>()?;
    if args.push {
        outputs.push(output::parse("type=registry")?);
    }
    if args.push_by_digest {
        outputs.push(output::parse("type=registry,push-by-digest=true")?);
    }
    let network = match args.network.as_deref() {
        Some(name) => BuildNetwork::from_name(name).context("checked by clap")?,
        None => BuildNetwork::Default,
    };
    let mut entitlements: Vec<Entitlement> = args
        .allow
        .iter()
        .filter_map(|a| Entitlement::from_name(a))
        .collect();
    if network == BuildNetwork::Host {
        // As buildx: the build's own --network=host is its grant.
        entitlements.push(Entitlement::NetworkHost);
    }
    let source_date_epoch = match &args.source_date_epoch {
        Some(flag) => SourceDateEpoch::parse_flag(flag)?,
        None => SourceDateEpoch::Default,
    };
    Ok(BuildRequest {
        context: inputs.context.clone(),
        dockerfile: inputs.dockerfile.clone(),
        build_args: parse_build_args(&args.build_args)?,
        target: args.target.clone(),
        tags,
        outputs,
        labels: parse_pairs("--label", &args.labels, true)?,
        annotations: parse_pairs("--annotation", &args.annotations, false)?,
        entitlements,
        platforms: parse_platforms(&args.platforms)?,
        secrets: secrets.sources(),
        ssh: super::ssh::parse(&args.ssh)?,
        no_cache: args.no_cache,
        cache_from: (args.cache_from.iter())
            .map(|c| rbuild_remote_cache::parse_cache_from(c))
            .collect::<Result<_, _>>()?,
        cache_to: (args.cache_to.iter())
            .map(|c| rbuild_remote_cache::parse_cache_to(c))
            .collect::<Result<_, _>>()?,
        source_date_epoch,
        limits: args.limits.limits()?,
        max_parallel_runs: args.jobs.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        ),
        network,
        sandbox: sandbox_extras(args)?,
        no_cache_filter: args.no_cache_filter.clone(),
        pull: args.pull,
        named_contexts: BTreeMap::new(),
    })
}

/// `--add-host`, `--ulimit` and `--shm-size`, checked as `rbuild run`
/// checks them, for every RUN.
fn sandbox_extras(args: &BuildArgs) -> anyhow::Result<SandboxExtras> {
    let extra_hosts = args
        .add_hosts
        .iter()
        .map(|h| runopts::parse_add_host(h).map(|e| (e.name, e.ip.to_string())))
        .collect::<Result<_, _>>()?;
    for u in &args.ulimits {
        Ulimit::parse(u).map_err(anyhow::Error::msg)?;
    }
    Ok(SandboxExtras {
        extra_hosts,
        ulimits: args.ulimits.clone(),
        shm_size: args
            .shm_size
            .as_deref()
            .map(|s| runopts::parse_size("--shm-size", s))
            .transpose()?,
    })
}

/// The `--platform` values: comma lists, normalised, each platform once.
fn parse_platforms(values: &[String]) -> anyhow::Result<Vec<Platform>> {
    let mut out: Vec<Platform> = Vec::new();
    for v in values {
        for p in Platform::parse_list(v).with_context(|| format!("--platform {v}"))? {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// `KEY=VALUE` values of `flag` (`--label`, `--annotation`); a bare `KEY`
/// is an empty value where `bare_key` allows it (Docker's `--label`).
fn parse_pairs(
    flag: &str,
    values: &[String],
    bare_key: bool,
) -> anyhow::Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|a| {
            let (k, v) = match a.split_once('=') {
                Some(pair) => pair,
                None if bare_key => (a.as_str(), ""),
                None => bail!("invalid {flag} {a:?}: expected KEY=VALUE"),
            };
            if k.is_empty() {
                bail!("invalid {flag} {a:?}: the key is empty");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// `--provenance` and `--sbom`: rbuild makes no attestations, so only
/// `false` is accepted (as buildx reads booleans: `false`, `0`).
fn refuse_attestations(args: &BuildArgs) -> anyhow::Result<()> {
    for (flag, value) in [("provenance", &args.provenance), ("sbom", &args.sbom)] {
        if let Some(v) = value
            && !matches!(v.as_str(), "false" | "0")
        {
            bail!(
                "--{flag}={v}: rbuild makes no {flag} attestations yet; pass --{flag}=false or leave the flag out"
            );
        }
    }
    Ok(())
}

/// `--build-arg KEY=VALUE` values (a bare `KEY` from the environment).
fn parse_build_args(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(a) {
                Ok(v) => (a.clone(), v),
                // As docker: a bare KEY that is not in the environment is left unset.
                Err(_) => continue,
            },
        };
        if k.is_empty() {
            bail!("invalid --build-arg {a:?}: the name is empty");
        }
        out.insert(k, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_may_be_bare_keys_and_annotations_may_not() {
        let labels = parse_pairs("--label", &["a=1".into(), "b".into()], true).unwrap();
        assert_eq!(labels.get("a").unwrap(), "1");
        assert_eq!(labels.get("b").unwrap(), "");
        assert!(parse_pairs("--annotation", &["b".into()], false).is_err());
        assert!(parse_pairs("--label", &["=1".into()], true).is_err());
    }

    #[test]
    fn build_args_need_names() {
        let parsed = parse_build_args(&["A=1".into(), "B=".into()]).unwrap();
        assert_eq!(parsed.get("A").unwrap(), "1");
        assert_eq!(parsed.get("B").unwrap(), "");
        assert!(parse_build_args(&["=x".into()]).is_err());
    }
}
