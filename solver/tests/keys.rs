//! Cache keys do not depend on the machine: the same Dockerfile and
//! context give the same keys from stores and contexts in other
//! directories, with other file times and a warm or cold content-hash
//! cache (without root: keys are computed before anything runs); and a
//! solved step's record keeps the ingredients of its key (as root).

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use rbuild_cache::{CacheKey, INGREDIENTS_VERSION, KeyInput, Store};
use rbuild_solver::Solver;

const DOCKERFILE: &str = "\
FROM scratch AS files
COPY a.txt /
COPY --link sub /sub
FROM scratch
COPY --from=files /a.txt /b.txt
RUN --mount=type=bind,source=sub,target=/sub cat /sub/c
";

/// A context with the same files as every other, made at `mtime`.
fn make_context(dir: &Path, mtime: SystemTime) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for (name, data) in [("a.txt", "a\n"), ("sub/c", "c\n")] {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
}

/// The keys a solve of [`DOCKERFILE`] computes in `store` for `context`.
async fn keys(store: &Path, context: &Path) -> Vec<CacheKey> {
    let store = Store::open(store).unwrap();
    solver(store, DOCKERFILE, context).await.keys().to_vec()
}

/// A solver of `dockerfile` (no base images) in `store` for `context`.
async fn solver(store: Store, dockerfile: &str, context: &Path) -> Solver {
    let setup = common::Setup {
        max_parallel_runs: 1,
        epoch: None,
        stage_copies: true,
        progress: None,
    };
    common::solver(store, dockerfile, context, setup).await
}

#[tokio::test]
async fn two_stores_in_different_directories_give_equal_keys() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    make_context(&first.path().join("context"), SystemTime::UNIX_EPOCH);
    make_context(&second.path().join("elsewhere/ctx"), an_hour_ago);

    let here = keys(&first.path().join("store"), &first.path().join("context")).await;
    let there = keys(
        &second.path().join("other-store"),
        &second.path().join("elsewhere/ctx"),
    )
    .await;
    assert_eq!(here, there);
    let warm = keys(&first.path().join("store"), &first.path().join("context")).await;
    assert_eq!(warm, here, "the store's content-hash cache changes no key");

    std::fs::write(second.path().join("elsewhere/ctx/sub/c"), "changed\n").unwrap();
    let edited = keys(
        &second.path().join("other-store"),
        &second.path().join("elsewhere/ctx"),
    )
    .await;
    assert_ne!(edited, here, "the content of a selected file counts");
}

/// As root (a COPY gives its files to root): what a step's record keeps.
#[tokio::test]
async fn a_solved_step_records_the_ingredients_of_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    make_context(&context, SystemTime::UNIX_EPOCH);
    let store = Store::open(&dir.path().join("store")).unwrap();
    let dockerfile = "FROM scratch\nCOPY a.txt /\n";
    let first = solver(store.clone(), dockerfile, &context).await;
    let keys = first.keys().to_vec();
    let copy = keys.len() - 1;
    first.solve(std::future::pending()).await.unwrap();

    let record = store.get_record(&keys[copy]).unwrap().expect("recorded");
    let ingredients = record.ingredients.clone().expect("with its ingredients");
    assert_eq!(ingredients.version, INGREDIENTS_VERSION);
    assert_eq!(ingredients.platform, "linux/amd64");
    assert_eq!(ingredients.base_image, None, "FROM scratch");
    assert!(
        matches!(&ingredients.inputs[0], KeyInput::State(k) if keys[..copy].contains(k)),
        "the base by its key: {ingredients:?}"
    );
    assert!(
        matches!(&ingredients.inputs[1], KeyInput::Content(sum) if !sum.is_empty()),
        "{ingredients:?}"
    );
    assert!(record.added && record.created > 0, "{record:?}");

    let again = solver(store.clone(), dockerfile, &context).await;
    let result = again.solve(std::future::pending()).await.unwrap();
    assert_eq!(
        result.layer_created,
        [record.created],
        "a hit keeps its time"
    );
}
