//! `rbuild build` (and `rbuild PATH`): Dockerfile → op graph → solve →
//! image in the store, tagged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use futures::future::try_join_all;
use rbuild_build::local;
use rbuild_cache::LayerRecord;
use rbuild_exporter::StoredImage;
use rbuild_exporter::{Compression, ExportOptions, ImageSpec};
use rbuild_frontend::config::History;
use rbuild_frontend::input::read_input;
use rbuild_frontend::{BuildOptions, Dockerfile, parse_dockerignore};
use rbuild_registry::ClientOptions;
use rbuild_solver::{ContextModes, Layer, SolveOptions, SolveResult, Solver};

use super::epoch;
use super::limits::LimitArgs;
use super::output::Output;
use super::secrets::Secrets;
use super::session::{Session, host_platform};
use crate::progress::{Display, Mode};

/// `rbuild build` arguments, named as `docker build`'s.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory.
    #[arg(value_name = "PATH")]
    context: PathBuf,

    /// The Dockerfile (default: PATH/Dockerfile).
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

    /// Progress output.
    #[arg(long, value_enum, default_value = "auto")]
    progress: Mode,

    /// Print only the image digest on success.
    #[arg(short, long)]
    quiet: bool,

    /// A secret for `RUN --mount=type=secret`: `id=ID,src=PATH` or
    /// `id=ID,env=VAR`; repeatable.
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    secrets: Vec<String>,

    /// Where the result goes: `type=image|registry|oci|docker|local|tar`
    /// with `dest=`, `push=true`, `name=`… (repeatable; default: the store).
    #[arg(short = 'o', long = "output", value_name = "type=TYPE,dest=PATH")]
    outputs: Vec<String>,

    /// Push the image to its registry (shorthand for `--output type=registry`).
    #[arg(long)]
    push: bool,

    /// Add an annotation to the image manifest (`KEY=VALUE`); repeatable.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,

    /// Write the image id (config digest) to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,

    /// Write the build result (digests, tags) as JSON to this file.
    #[arg(long = "metadata-file", value_name = "FILE")]
    metadata_file: Option<PathBuf>,

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

/// Fails when a step of `graph` needs an entitlement `allow` does not
/// grant, naming the step (BuildKit refuses these builds the same way).
fn check_entitlements(
    dockerfile: &Path,
    graph: &rbuild_frontend::graph::BuildGraph,
    allow: &[String],
) -> anyhow::Result<()> {
    let granted = |entitlement: &str| allow.iter().any(|a| a == entitlement);
    for node in &graph.nodes {
        let rbuild_frontend::graph::Op::Exec(exec) = &node.op else {
            continue;
        };
        let needed = if exec.insecure && !granted("security.insecure") {
            Some(("RUN --security=insecure", "security.insecure"))
        } else if exec.network == rbuild_frontend::graph::NetworkMode::Host
            && !granted("network.host")
        {
            Some(("RUN --network=host", "network.host"))
        } else {
            None
        };
        if let Some((what, entitlement)) = needed {
            let at = node.location.map_or(String::new(), |l| {
                format!("{}:{}:{}: ", dockerfile.display(), l.line, l.column)
            });
            bail!(
                "{at}{}: {what} needs the {entitlement} entitlement: pass --allow {entitlement}",
                node.name
            );
        }
    }
    Ok(())
}

/// Runs a build.
pub fn run(root: &Path, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let mode = if args.quiet {
        Mode::Quiet
    } else {
        args.progress.resolve()
    };
    let display = Arc::new(Display::new(mode));
    let session = Session::open(root, ClientOptions::default())?;
    let tags: Vec<String> = args
        .tags
        .iter()
        .map(|t| local::store_name(t).with_context(|| format!("invalid tag {t:?}")))
        .collect::<anyhow::Result<_>>()?;

    let load = display.begin("[internal] load build definition");
    let dockerfile = args
        .file
        .clone()
        .unwrap_or_else(|| args.context.join("Dockerfile"));
    let source = read_input(&dockerfile)?
        .with_context(|| format!("Dockerfile {} not found", dockerfile.display()))?;
    let parsed = Dockerfile::parse(&dockerfile.display().to_string(), &source)?;
    let options = BuildOptions {
        build_args: parse_build_args(&args.build_args)?,
        target: args.target.clone(),
        platform: platform_string(),
        ignore_patterns: read_ignore(&args.context, &dockerfile)?,
    };
    let names = parsed.base_images(&options)?;
    let images = &session.images;
    let resolved = session
        .runtime
        .block_on(try_join_all(names.iter().map(|n| images.resolve(n))))?;
    let images: BTreeMap<String, _> = names
        .into_iter()
        .zip(resolved.iter().map(|i| i.to_frontend()))
        .collect();
    let graph = parsed.lower(&options, &images)?;
    check_entitlements(&dockerfile, &graph, &args.allow)?;
    let epoch = epoch::resolve(args.source_date_epoch.as_deref(), &args.context)?;
    let context_modes =
        epoch::context_modes(args.source_date_epoch.as_deref(), epoch, &args.context);
    if let Some((secs, epoch::EpochSource::GitHead)) = epoch {
        display.note(
            &load,
            &format!(
                "SOURCE_DATE_EPOCH={secs}: the context's git HEAD commit time (--source-date-epoch none for real times)"
            ),
        );
    }
    if context_modes == ContextModes::Git {
        display.note(
            &load,
            "context file modes as git records them: 0644, 0755 for executables and directories (--source-date-epoch none for the modes on disk)",
        );
    }
    let epoch = epoch.map(|(secs, _)| secs);
    display.end(load, "[internal] load build definition");
    for arg in &graph.unused_build_args {
        eprintln!("WARNING: build-arg {arg:?} was not consumed by any ARG");
    }
    for warning in &graph.warnings {
        eprintln!("WARNING: {warning}");
    }

    let secrets = Secrets::parse(&args.secrets)?;
    let mut outputs = args
        .outputs
        .iter()
        .map(|o| Output::parse(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.push {
        outputs.push(Output::parse("type=registry")?);
    }
    if !outputs.iter().any(|o| o.kind == "image") {
        outputs.insert(0, Output::parse("type=image")?);
    }
    let solver = session.runtime.block_on(Solver::new(
        session.store.clone(),
        session.images.clone(),
        graph.clone(),
        SolveOptions {
            context_dir: args.context.clone(),
            no_cache: args.no_cache,
            max_parallel_runs: args.jobs.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                usize::from,
            ),
            secrets: secrets.sources(),
            ssh: super::ssh::parse(&args.ssh)?,
            limits: args.limits.limits()?,
            context_modes,
        },
        display.clone(),
    ))?;
    let result = session.runtime.block_on(solver.solve())?;

    let export = display.begin("exporting to image");
    let annotations = parse_annotations(&args.annotations)?;
    // The store is an OCI layout, so images in it always use OCI media
    // types; `oci-mediatypes=false` applies where an image leaves it.
    let manifest = export_image(&session, &graph, result, annotations, epoch)?;
    let digest = manifest.digest().to_string();
    display.note(&export, &format!("writing image {digest} done"));
    for output in &outputs {
        output.write(&session, &manifest, &tags, epoch)?;
        if output.kind == "image" {
            for tag in &tags {
                display.note(&export, &format!("naming to {tag} done"));
            }
        } else {
            display.note(
                &export,
                &format!(
                    "exporting to {} {} done",
                    output.kind,
                    output.options.get("dest").map_or("", String::as_str)
                ),
            );
        }
    }
    display.end(export, "exporting to image");
    let config_digest = StoredImage::read(&session.store, &digest)?.config_digest;
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &config_digest)
            .with_context(|| format!("write {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": digest,
            "containerimage.config.digest": config_digest,
            "image.name": tags.join(","),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    if args.quiet {
        outln!("{digest}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the solved state as an image: layers (built ones exported,
/// base-image ones as pulled), the config and history, the manifest.
fn export_image(
    session: &Session,
    graph: &rbuild_frontend::graph::BuildGraph,
    result: SolveResult,
    annotations: BTreeMap<String, String>,
    epoch: Option<i64>,
) -> anyhow::Result<oci_spec::image::Descriptor> {
    let opts = ExportOptions {
        compression: Compression::Uncompressed,
        source_date_epoch: epoch,
        oci_mediatypes: true,
    };
    let mut layers: Vec<LayerRecord> = Vec::with_capacity(result.state.len());
    for layer in &result.state {
        let record = match layer {
            Layer::Snapshot(id) => rbuild_exporter::export_layer(&session.store, id, &opts)?,
            Layer::Blob {
                blob,
                media_type,
                diff_id,
                ..
            } => {
                session
                    .runtime
                    .block_on(session.images.ensure_blob(layer))?;
                LayerRecord {
                    snapshot: String::new(),
                    diff_id: diff_id.clone(),
                    blob: blob.clone(),
                    media_type: media_type.clone(),
                    epoch: None,
                }
            }
        };
        layers.push(record);
    }
    let (history, created) = mark_history(
        &graph.history,
        &result,
        &graph.layer_nodes,
        opts.source_date_epoch,
    );
    let platform = host_platform();
    let image = ImageSpec {
        layers,
        config: graph.config.clone(),
        history,
        author: graph.author.clone(),
        created,
        annotations,
        os: platform.os,
        architecture: platform.architecture,
        variant: platform.variant,
    };
    Ok(rbuild_exporter::write_image(&session.store, &image, &opts)?)
}

/// The history to write, and the image's `created`: the entries of layer
/// steps that added nothing are marked empty; each entry of this build gets
/// the time its step's result was first made (config-only steps that of the
/// step before them), so that a cached rebuild is the same image; with
/// `SOURCE_DATE_EPOCH`, that time.
fn mark_history(
    history: &[History],
    result: &SolveResult,
    layer_nodes: &[rbuild_frontend::graph::NodeId],
    epoch: Option<i64>,
) -> (Vec<History>, String) {
    let mut out = history.to_vec();
    let layer_entries: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.empty_layer)
        .map(|(i, _)| i)
        .collect();
    let ours = &layer_entries[layer_entries.len().saturating_sub(layer_nodes.len())..];
    let mut stamp: BTreeMap<usize, i64> = BTreeMap::new();
    for ((&entry, &was_added), &created) in ours
        .iter()
        .zip(&result.layer_added)
        .zip(&result.layer_created)
    {
        out[entry].empty_layer = !was_added;
        stamp.insert(entry, created);
    }
    let base_time = out.iter().rev().find_map(|h| h.created.clone());
    let mut last: Option<String> = base_time;
    for (i, h) in out.iter_mut().enumerate() {
        if let Some(t) = stamp.get(&i) {
            last = Some(rfc3339(epoch.unwrap_or(*t)));
        }
        match &h.created {
            Some(c) => last = last.or_else(|| Some(c.clone())),
            None => {
                h.created = Some(
                    epoch
                        .map(rfc3339)
                        .or_else(|| last.clone())
                        .unwrap_or_else(now_rfc3339),
                )
            }
        }
    }
    let created = epoch
        .map(rfc3339)
        .or_else(|| out.last().and_then(|h| h.created.clone()))
        .unwrap_or_else(now_rfc3339);
    (out, created)
}

/// `--annotation KEY=VALUE` values.
fn parse_annotations(values: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|a| {
            a.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("invalid --annotation {a:?}: expected KEY=VALUE"))
        })
        .collect()
}

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

/// `.dockerignore` patterns: `<Dockerfile>.dockerignore` beside the
/// Dockerfile wins over the context's `.dockerignore`. Each is read as the
/// Dockerfile is (regular files only, bounded, symlinks kept inside).
fn read_ignore(context: &Path, dockerfile: &Path) -> anyhow::Result<Vec<String>> {
    let beside = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
    for candidate in [beside, context.join(".dockerignore")] {
        if let Some(bytes) = read_input(&candidate)? {
            return Ok(parse_dockerignore(&String::from_utf8_lossy(&bytes)));
        }
    }
    Ok(Vec::new())
}

fn platform_string() -> String {
    let p = host_platform();
    match p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    rfc3339(secs)
}

/// Formats Unix seconds as RFC 3339 in UTC (`1970-01-01T00:00:00Z`).
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339(super::epoch::MAX_SOURCE_DATE_EPOCH),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn build_args_need_names() {
        let parsed = parse_build_args(&["A=1".into(), "B=".into()]).unwrap();
        assert_eq!(parsed.get("A").unwrap(), "1");
        assert_eq!(parsed.get("B").unwrap(), "");
        assert!(parse_build_args(&["=x".into()]).is_err());
    }
}
