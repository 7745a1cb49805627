//! The build: Dockerfile → op graph (base images resolved in parallel) →
//! solve → image in the store → outputs. Progress goes out as events; a
//! cancel token stops it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::try_join_all;
use rbuild_cache::CacheKey;
use rbuild_exporter::{ImageSpec, StoredImage};
use rbuild_frontend::graph::{BuildGraph, NetworkMode, NodeId, Op};
use rbuild_frontend::input::read_input;
use rbuild_frontend::{BaseImage, BuildOptions, Dockerfile, parse_dockerignore};
use rbuild_image::Platform;
use rbuild_remote_cache::ImportedCaches;
use rbuild_solver::{ContextModes, PulledImage, SolveOptions, SolveResult, Solver, Target};

use crate::base_check::BaseChecks;
use crate::epoch::{self, EpochSource};
use crate::events::{Event, EventSink, Recorder};
use crate::history::mark_history;
use crate::layers::EarlyExports;
use crate::named;
use crate::output::Output;
use crate::platforms::Annotations;
use crate::previous;
use crate::remote_cache::{self, SolvedSteps};
use crate::runflags;
use crate::session::{host_platform, host_platform_string};
use crate::{BuildError, BuildRequest, BuildResult, CancelToken, Entitlement, Session};

/// Runs the build `request` asks for in `session`, sending progress to
/// `events`; `cancel` stops it (sandboxes killed, [`BuildError::Cancelled`]).
pub fn build(
    session: &Session,
    request: &BuildRequest,
    events: EventSink,
    cancel: &CancelToken,
) -> Result<BuildResult, BuildError> {
    let recorder = std::sync::Arc::new(Recorder::new(events));
    let platforms = match request.platforms.as_slice() {
        [] => vec![host_platform()],
        asked => asked.to_vec(),
    };
    let annotations = Annotations::split(&request.annotations)?;
    let (graphs, epoch, context_modes, base_checks) =
        load(session, request, &platforms, &recorder, cancel)?;
    crate::platforms::check_emulation(&graphs)?;
    let graph = &graphs[0].1;
    for arg in &graph.unused_build_args {
        recorder.emit(Event::Warning {
            message: format!("build-arg {arg:?} was not consumed by any ARG"),
        });
    }
    for warning in &graph.warnings {
        recorder.emit(Event::Warning {
            message: warning.clone(),
        });
    }
    // All platforms solve as one graph (see `crate::platforms`).
    let (graph, targets) = match graphs.as_slice() {
        [(_, graph)] => (
            graph.clone(),
            vec![Target {
                node: graph.target,
                layer_nodes: graph.layer_nodes.clone(),
            }],
        ),
        _ => {
            let merged = crate::platforms::merge(&graphs);
            (merged.graph, merged.targets)
        }
    };
    let plan = SolvePlan {
        graph: &graph,
        targets: &targets,
        platform: &platforms[0],
        context_modes,
        epoch,
    };
    let mut imported = remote_cache::import(session, request, &recorder);
    let opts = crate::layers::export_options(epoch);
    let early = Arc::new(EarlyExports::new(
        session.store.clone(),
        opts,
        &graph,
        &targets,
    ));
    let solving = Solving {
        plan: &plan,
        recorder: &recorder,
        early: &early,
    };
    let (solved, records) = match solve(session, request, &solving, &imported, cancel) {
        // A cache blob that is gone or damaged: build without the caches.
        Err(BuildError::Solve(e))
            if (imported.as_ref())
                .zip(e.failed_blob())
                .is_some_and(|(caches, blob)| caches.holds_blob(blob)) =>
        {
            recorder.emit(Event::Warning {
                message: format!("cache import dropped, building without it: {e}"),
            });
            imported = None;
            solve(session, request, &solving, &imported, cancel)?
        }
        other => other?,
    };
    early.finish();
    if cancel.is_cancelled() {
        return Err(BuildError::Cancelled);
    }

    let export = recorder.begin("exporting to image");
    // The store is an OCI layout, so images in it always use OCI media
    // types; `oci-mediatypes=false` applies where an image leaves it.
    let mut manifests = Vec::with_capacity(graphs.len());
    let parts = graphs.iter().zip(&targets).zip(solved);
    for (((platform, own_graph), target), solved) in parts {
        // The inline cache of this platform's image: its target's records.
        let own_steps = SolvedSteps {
            graph: &graph,
            targets: &[target.node],
            records: &records,
            steps: &[],
        };
        let inline = remote_cache::inline(session, request, &own_steps, &solved.state)?;
        let config_platform = config_platform(request, own_graph, platform)?;
        let image = PlatformImage {
            platform: &config_platform,
            annotations: annotations.manifest(platform),
            inline_cache: inline,
        };
        let mut desc = export_image(session, own_graph, solved, request, image, epoch)?;
        let entry = annotations.descriptor(platform);
        if graphs.len() > 1 && !entry.is_empty() {
            desc.set_annotations(Some(entry.into_iter().collect()));
        }
        manifests.push((desc, platform.clone()));
    }
    let manifest = match manifests.as_slice() {
        [(single, _)] => single.clone(),
        _ => rbuild_exporter::write_index(&session.store, &manifests, &annotations.index)?,
    };
    let digest = manifest.digest().to_string();
    recorder.note(&export, &format!("writing image {digest} done"));
    let store_output = Output::Image {
        names: Vec::new(),
        push: None,
    };
    // The store gets the image (named with the tags) unless an output
    // names it already, or the build is for the cache only.
    let implied = (!request
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Image { .. } | Output::CacheOnly)))
    .then_some(&store_output);
    if manifests.len() > 1 {
        for output in &request.outputs {
            output.check_multi_platform()?;
        }
    }
    let mut pushed_digest = None;
    for output in implied.into_iter().chain(&request.outputs) {
        for pushed in output.write(session, &manifest, &request.tags, epoch)? {
            if pushed.by_digest {
                let name = format!("{}@{}", pushed.repository, pushed.digest);
                recorder.note(&export, &format!("pushed by digest: {name}"));
            }
            pushed_digest = Some(pushed.digest);
        }
        match output.done_note() {
            Some(note) => recorder.note(&export, &note),
            None => {
                for tag in &request.tags {
                    recorder.note(&export, &format!("naming to {tag} done"));
                }
            }
        }
    }
    recorder.end(export);
    let roots: Vec<NodeId> = targets.iter().map(|t| t.node).collect();
    let steps = previous::build_steps(&graph, &records, &platforms[0].to_string());
    let all_steps = SolvedSteps {
        graph: &graph,
        targets: &roots,
        records: &records,
        steps: &steps,
    };
    remote_cache::export(
        session,
        request,
        &all_steps,
        imported.as_deref(),
        epoch,
        &recorder,
    )?;
    previous::record_build(session, request, steps)?;
    base_checks.finish(session, &recorder);
    let image_id = match manifests.len() {
        1 => StoredImage::read(&session.store, &digest)?.config_digest,
        _ => digest,
    };
    Ok(BuildResult {
        manifest,
        pushed_digest,
        image_id,
        tags: request.tags.clone(),
        steps: recorder.records(),
    })
}

/// Each target platform's lowered graph.
type Graphs = Vec<(Platform, BuildGraph)>;

/// The "load build definition" step: reads the Dockerfile and lowers it
/// for each of `platforms` (the base images of all resolved at once),
/// checks entitlements, resolves the epoch; the graphs, the epoch and the
/// context's file modes.
fn load(
    session: &Session,
    request: &BuildRequest,
    platforms: &[Platform],
    recorder: &Recorder,
    cancel: &CancelToken,
) -> Result<(Graphs, Option<i64>, ContextModes, BaseChecks), BuildError> {
    let step = recorder.begin("[internal] load build definition");
    let dockerfile = &request.dockerfile;
    let source =
        read_input(dockerfile)?.ok_or_else(|| BuildError::NoDockerfile(dockerfile.clone()))?;
    let parsed = Dockerfile::parse(&dockerfile.display().to_string(), &source)?;
    let ignore_patterns = read_ignore(&request.context, dockerfile)?;
    let options: Vec<BuildOptions> = platforms
        .iter()
        .map(|p| BuildOptions {
            build_args: request.build_args.clone(),
            target: request.target.clone(),
            platform: p.to_string(),
            build_platform: host_platform_string(),
            ignore_patterns: ignore_patterns.clone(),
        })
        .collect();
    let mut bases: Vec<BaseImage> = Vec::new();
    for o in &options {
        for base in parsed.base_images(o)? {
            if !bases.contains(&base) {
                bases.push(base);
            }
        }
    }
    let images = &session.images;
    // A build that runs a command has its bases' layers pulled from when
    // their manifests are read (see `prefetch_bases` for the rest).
    if prefetches(request) && parsed.instructions().iter().any(|i| i.keyword == "run") {
        images.prefetch_layers();
    }
    // A named context stands for the image it names (or is made into).
    let mut targets = BTreeMap::new();
    for b in &bases {
        if let Some(context) = request.named_contexts.get(&b.name)
            && !targets.contains_key(&b.name)
        {
            let target = named::reference(session, request, context, cancel)?;
            targets.insert(b.name.clone(), target);
        }
    }
    let resolved = session
        .runtime
        .block_on(try_join_all(bases.iter().map(|b| {
            let targets = &targets;
            async move {
                // The frontend names platforms as `Platform` formats them.
                let platform = Platform::parse(&b.platform)
                    .map_err(|e| rbuild_solver::SolveError::Other(e.to_string()))?;
                let name = targets.get(&b.name).unwrap_or(&b.name);
                let dir_context = matches!(
                    request.named_contexts.get(&b.name),
                    Some(named::NamedContext::Dir(_))
                );
                if request.pull && !dir_context {
                    images.pull_base(name, &platform).await
                } else {
                    images.resolve(name, &platform).await
                }
            }
        })))?;
    // Bases the store held (no `--pull`, no named context): is their
    // registry still there?
    let from_store: Vec<(&str, &PulledImage)> = bases
        .iter()
        .zip(&resolved)
        .filter(|(b, _)| !request.pull && !targets.contains_key(&b.name))
        .map(|(b, image)| (b.name.as_str(), image.as_ref()))
        .collect();
    let base_checks = BaseChecks::start(session, &from_store);
    let images: BTreeMap<BaseImage, _> = bases
        .into_iter()
        .zip(resolved.iter().map(|i| i.to_frontend()))
        .collect();
    let mut graphs = Vec::with_capacity(platforms.len());
    for (platform, o) in platforms.iter().zip(&options) {
        let mut graph = parsed.lower(o, &images)?;
        runflags::apply(&mut graph, request.network, &request.sandbox);
        check_entitlements(dockerfile, &graph, &request.entitlements)?;
        graphs.push((platform.clone(), graph));
    }
    prefetch_bases(session, request, &graphs, &resolved);
    let asked = request.source_date_epoch;
    let epoch = epoch::resolve(asked, &request.context)?;
    let context_modes = epoch::context_modes(asked, epoch, &request.context);
    if let Some((secs, EpochSource::GitHead)) = epoch {
        recorder.note(
            &step,
            &format!(
                "SOURCE_DATE_EPOCH={secs}: the context's git HEAD commit time (--source-date-epoch none for real times)"
            ),
        );
    }
    if context_modes == ContextModes::Git {
        recorder.note(
            &step,
            "context file modes as git records them: 0644, 0755 for executables and directories (--source-date-epoch none for the modes on disk)",
        );
    }
    recorder.end(step);
    Ok((
        graphs,
        epoch.map(|(secs, _)| secs),
        context_modes,
        base_checks,
    ))
}

/// Starts pulling and unpacking the layers of the base images `resolved`
/// while the solve is still being prepared (its keys, the context's
/// checksum), so that the first RUN finds its base unpacked instead of
/// waiting for it: only for a build that runs a command (a build of COPY
/// --link steps or of config alone never needs the files) and has no
/// `--cache-from` (whose hits may leave the base in the registry). A
/// layer the store holds is not unpacked again; a failure here is the
/// failure of the step that needs the layer, which then tries again.
/// Bases fetched from a registry had their layers started earlier, when
/// the Dockerfile has a RUN (`ImageResolver::prefetch_layers`): this
/// covers the rest (bases the store held, commands that only the graph
/// shows, as a base's ONBUILD RUN).
fn prefetch_bases(
    session: &Session,
    request: &BuildRequest,
    graphs: &Graphs,
    resolved: &[std::sync::Arc<PulledImage>],
) {
    let runs = (graphs.iter().flat_map(|(_, g)| &g.nodes)).any(|n| matches!(n.op, Op::Exec(_)));
    if !runs || !prefetches(request) {
        return;
    }
    for layer in resolved.iter().flat_map(|image| image.layers.iter()) {
        let (images, layer) = (session.images.clone(), layer.clone());
        session.runtime.spawn(async move {
            let _ = images.snapshot(&layer).await;
        });
    }
}

/// Whether the bases' layers may be pulled before a step asks for them:
/// not with `--cache-from`, whose hits may leave them in the registry.
fn prefetches(request: &BuildRequest) -> bool {
    request.cache_from.is_empty()
}

/// What one solve realizes: a graph (all platforms' merged, for several)
/// and its targets, one per platform.
struct SolvePlan<'a> {
    graph: &'a BuildGraph,
    targets: &'a [Target],
    /// The platform of the nodes that name none.
    platform: &'a Platform,
    context_modes: ContextModes,
    /// The build's `SOURCE_DATE_EPOCH`.
    epoch: Option<i64>,
}

/// A solve's plan and who is told of its progress and of the layers its
/// steps make.
struct Solving<'a> {
    plan: &'a SolvePlan<'a>,
    recorder: &'a Arc<Recorder>,
    early: &'a Arc<EarlyExports>,
}

/// Solves the plan (with the imported caches, if any): one result per
/// target, in order, and every node's record key. A tripped `cancel`
/// stops it: no step starts after it, the running ones are killed, and
/// it ends with [`BuildError::Cancelled`].
fn solve(
    session: &Session,
    request: &BuildRequest,
    solving: &Solving,
    imported: &Option<Arc<ImportedCaches>>,
    cancel: &CancelToken,
) -> Result<(Vec<SolveResult>, Vec<CacheKey>), BuildError> {
    let Solving {
        plan,
        recorder,
        early,
    } = solving;
    if cancel.is_cancelled() {
        return Err(BuildError::Cancelled);
    }
    let options = SolveOptions {
        context_dir: request.context.clone(),
        no_cache: request.no_cache,
        no_cache_nodes: runflags::no_cache_nodes(plan.graph, &request.no_cache_filter)?,
        max_parallel_runs: request.max_parallel_runs.max(1),
        secrets: request.secrets.clone(),
        ssh: request.ssh.clone(),
        limits: request.limits,
        context_modes: plan.context_modes,
        platform: plan.platform.clone(),
        epoch: plan.epoch,
        stage_copies: true,
        imported: imported
            .clone()
            .map(|c| c as std::sync::Arc<dyn rbuild_solver::ImportedCache>),
    };
    session.runtime.block_on(async {
        let mut solver = Solver::new(
            session.store.clone(),
            session.images.clone(),
            plan.graph.clone(),
            options,
            (*recorder).clone(),
        )
        .await?;
        let early = (*early).clone();
        solver.on_tree_staged(early.clone());
        solver.on_layer_made(Box::new(move |node, id, staged| {
            early.made(node, id, staged)
        }));
        if let Some(previous) = previous::previous_build(session, request) {
            solver.compare_with(previous);
        }
        if let Some(imported) = imported {
            solver.compare_with_cache(imported.steps());
        }
        let records = solver.records().to_vec();
        match solver.solve_all(plan.targets, cancel.cancelled()).await {
            Err(_) if cancel.is_cancelled() => Err(BuildError::Cancelled),
            other => Ok((other?, records)),
        }
    })
}

/// Fails when a step of `graph` needs an entitlement `granted` does not
/// hold, naming the step (BuildKit refuses these builds the same way).
fn check_entitlements(
    dockerfile: &Path,
    graph: &BuildGraph,
    granted: &[Entitlement],
) -> Result<(), BuildError> {
    for node in &graph.nodes {
        let Op::Exec(exec) = &node.op else {
            continue;
        };
        let needed = if exec.security == rbuild_frontend::graph::Security::Insecure
            && !granted.contains(&Entitlement::SecurityInsecure)
        {
            Some(("RUN --security=insecure", Entitlement::SecurityInsecure))
        } else if exec.network == NetworkMode::Host && !granted.contains(&Entitlement::NetworkHost)
        {
            Some(("RUN --network=host", Entitlement::NetworkHost))
        } else {
            None
        };
        if let Some((what, entitlement)) = needed {
            return Err(BuildError::Entitlement {
                at: node.location.map_or(String::new(), |l| {
                    format!("{}:{}:{}: ", dockerfile.display(), l.line, l.column)
                }),
                step: node.name.clone(),
                what,
                entitlement,
            });
        }
    }
    Ok(())
}

/// The platform an image's config names, as BuildKit's: the target
/// platform asked for; without `--platform`, that of the final stage's
/// base image (a final `FROM --platform=X image` gives an X image).
fn config_platform(
    request: &BuildRequest,
    graph: &BuildGraph,
    target: &Platform,
) -> Result<Platform, BuildError> {
    match (&graph.base_platform, request.platforms.is_empty()) {
        // The frontend names platforms as `Platform` formats them.
        (Some(base), true) => Platform::parse(base)
            .map_err(|e| rbuild_solver::SolveError::Other(e.to_string()).into()),
        _ => Ok(target.clone()),
    }
}

/// What an image is for besides its solved state.
struct PlatformImage<'a> {
    /// Its platform (the config's and the index entry's).
    platform: &'a Platform,
    /// Its manifest's annotations.
    annotations: BTreeMap<String, String>,
    /// The inline cache its config carries, if asked for.
    inline_cache: Option<serde_json::Value>,
}

/// Writes the solved state as `image.platform`'s image: layers (built
/// ones exported, base-image ones as pulled), the config and history, the
/// manifest with `image.annotations`.
fn export_image(
    session: &Session,
    graph: &BuildGraph,
    result: SolveResult,
    request: &BuildRequest,
    image: PlatformImage,
    epoch: Option<i64>,
) -> Result<oci_spec::image::Descriptor, BuildError> {
    let PlatformImage {
        platform,
        annotations,
        inline_cache,
    } = image;
    let opts = crate::layers::export_options(epoch);
    let layers = crate::layers::export_layers(session, request, &result.state, &opts)?;
    let (history, created) = mark_history(&graph.history, &result, &graph.layer_nodes, epoch);
    // `--label` values win over the Dockerfile's LABELs, as BuildKit's.
    let mut config = graph.config.clone();
    config.labels.extend(request.labels.clone());
    let image = ImageSpec {
        layers,
        config,
        history,
        author: graph.author.clone(),
        created,
        annotations,
        os: platform.os.clone(),
        architecture: platform.architecture.clone(),
        variant: platform.variant.clone(),
        inline_cache,
    };
    Ok(rbuild_exporter::write_image(&session.store, &image, &opts)?)
}

/// `.dockerignore` patterns: `<Dockerfile>.dockerignore` beside the
/// Dockerfile wins over the context's `.dockerignore`. Each is read as the
/// Dockerfile is (regular files only, bounded, symlinks kept inside).
fn read_ignore(context: &Path, dockerfile: &Path) -> Result<Vec<String>, BuildError> {
    let beside = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
    for candidate in [beside, context.join(".dockerignore")] {
        if let Some(bytes) = read_input(&candidate)? {
            return Ok(parse_dockerignore(&String::from_utf8_lossy(&bytes)));
        }
    }
    Ok(Vec::new())
}
