//! A `COPY --from` made ahead of its base (staged, issue 19) gives what
//! the copy made after its base gives: the same snapshots, layer digests
//! and records, whether the staged copy was committed (its destination
//! new to the base) or refused by the base and made as usual (the
//! destination there already, under a symlink, an owner by name), and
//! whether it read an earlier state of its source stage that the later
//! steps left alone or one they changed (then dropped). As root: the
//! copies keep their files' owners.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rbuild_cache::Store;
use rbuild_exporter::{Compression, ExportOptions};
use rbuild_solver::Layer;

/// Stages copied from into a final stage on a base with /usr (0750),
/// /etc/passwd and a /lib -> usr symlink: new destinations (below existing
/// and new ancestors, numeric owner, a mode) and ones the base refuses;
/// `/deps` of `deps` is complete before its last step, and so is that of
/// `touched` until its last step writes below it.
const DOCKERFILE: &str = "\
FROM scratch AS deps
COPY deps/ /deps/
COPY out /out/
FROM scratch AS touched
COPY deps/ /deps/
COPY out /deps/out/
FROM scratch AS out
COPY out /out/
FROM scratch AS base
COPY base/ /
FROM base
COPY --from=out /out/ /app/
COPY --from=deps /deps /usr/lib/app
COPY --from=deps --chown=1000:50 --chmod=640 /deps/ /opt/deps/
COPY --from=deps /deps/a.so /usr/share/one/
COPY --from=deps /deps /usr/share
COPY --from=deps /deps /lib/deps
COPY --from=deps --chown=nobody /deps /owned
COPY --from=touched /deps /usr/lib/touched
";

fn write(path: &Path, data: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// The context: the Dockerfile, the stages' files, the base's tree.
fn make_context(dir: &Path) {
    write(&dir.join("Dockerfile"), DOCKERFILE);
    for n in 0..50 {
        write(&dir.join(format!("deps/lib{n}.so")), &format!("lib {n}\n"));
    }
    write(&dir.join("deps/a.so"), "a\n");
    write(&dir.join("deps/sub/b.so"), "b\n");
    write(&dir.join("out/app.tgz"), "app\n");
    write(&dir.join("base/usr/share/doc"), "doc\n");
    let usr = std::fs::Permissions::from_mode(0o750);
    std::fs::set_permissions(dir.join("base/usr"), usr).unwrap();
    write(
        &dir.join("base/etc/passwd"),
        "nobody:x:65534:65534::/:/bin/false\n",
    );
    std::os::unix::fs::symlink("usr", dir.join("base/lib")).unwrap();
}

/// Solves the Dockerfile of `context` in a new store at `store`, staging
/// copies or not; the sha256 digest of each of the final stage's layers
/// (at a fixed epoch) and the content key each step's record names.
async fn solve(store: &Path, context: &Path, stage_copies: bool) -> (Vec<String>, Vec<String>) {
    let store = Store::open(store).unwrap();
    let epoch = 1_700_000_000;
    let setup = common::Setup {
        max_parallel_runs: 2,
        epoch: Some(epoch),
        stage_copies,
    };
    let solver = common::solver(store.clone(), DOCKERFILE, context, setup).await;
    let records = solver.records().to_vec();
    let result = solver.solve(std::future::pending()).await.unwrap();
    let export = ExportOptions {
        compression: Compression::Gzip(6),
        source_date_epoch: Some(epoch),
        oci_mediatypes: true,
    };
    let digests = (result.state.iter())
        .map(|layer| match layer {
            Layer::Snapshot(id) => {
                let record = rbuild_exporter::export_layer(&store, id, &export).unwrap();
                record.blob.digest.to_string()
            }
            other => panic!("a layer of a build from scratch: {other:?}"),
        })
        .collect();
    let content_keys = (records.iter())
        .filter_map(|key| store.get_record(key).unwrap())
        .map(|record| format!("{:?}", record.content_key))
        .collect();
    let tmp = std::fs::read_dir(store.root().join("tmp")).unwrap();
    let left: Vec<_> = tmp.map(|e| e.unwrap().file_name()).collect();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().starts_with("stage-")),
        "no staged copy is left behind: {left:?}"
    );
    (digests, content_keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_copies_make_the_layers_and_records_of_copies_made_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    make_context(&context);
    let staged = solve(&dir.path().join("staged"), &context, true).await;
    let in_turn = solve(&dir.path().join("in-turn"), &context, false).await;
    assert_eq!(staged.0.len(), 9, "the base's layer and one per copy");
    assert_eq!(staged, in_turn);
}
