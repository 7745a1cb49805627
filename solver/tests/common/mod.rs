//! What the solver's integration tests share: a solver of a Dockerfile
//! (no base images) in a store for a context, its progress unwatched.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rbuild_cache::Store;
use rbuild_frontend::{BuildOptions, Dockerfile};
use rbuild_registry::{Client, ClientOptions, Platform};
use rbuild_solver::{ImageResolver, Progress, SolveOptions, Solver, VertexStatus};

/// Progress nobody watches.
struct Silent;

impl Progress for Silent {
    fn started(&self, _: usize, _: &str, _: &[usize]) {}
    fn log(&self, _: usize, _: &[u8]) {}
    fn finished(&self, _: usize, _: &str, _: VertexStatus) {}
}

/// How a test's solve differs from the defaults.
pub struct Setup {
    /// RUN steps at once.
    pub max_parallel_runs: usize,
    /// `SOURCE_DATE_EPOCH`.
    pub epoch: Option<i64>,
    /// Whether `COPY --from` is staged ahead of its base.
    pub stage_copies: bool,
    /// Who is told of the solve's progress (nobody by default).
    pub progress: Option<Arc<dyn Progress>>,
}

/// A solver of `dockerfile` for linux/amd64 in `store` for `context`.
pub async fn solver(store: Store, dockerfile: &str, context: &Path, setup: Setup) -> Solver {
    let options = BuildOptions {
        platform: String::from("linux/amd64"),
        ..BuildOptions::default()
    };
    let graph = Dockerfile::parse("Dockerfile", dockerfile.as_bytes())
        .and_then(|df| df.lower(&options, &BTreeMap::new()))
        .unwrap();
    let platform = Platform {
        os: String::from("linux"),
        architecture: String::from("amd64"),
        variant: None,
    };
    let client = Client::new(ClientOptions::default()).unwrap();
    let images = Arc::new(ImageResolver::new(store.clone(), client));
    let solve = SolveOptions {
        context_dir: context.to_path_buf(),
        no_cache: false,
        no_cache_nodes: Default::default(),
        max_parallel_runs: setup.max_parallel_runs,
        secrets: BTreeMap::new(),
        ssh: BTreeMap::new(),
        limits: Default::default(),
        context_modes: Default::default(),
        imported: None,
        platform,
        epoch: setup.epoch,
        stage_copies: setup.stage_copies,
    };
    let progress = setup.progress.unwrap_or_else(|| Arc::new(Silent));
    Solver::new(store, images, graph, solve, progress)
        .await
        .unwrap()
}
