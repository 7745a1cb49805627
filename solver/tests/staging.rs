//! A `COPY --from` made ahead of its base (staged, issue 19) gives what
//! the copy made after its base gives: the same snapshots, layer digests
//! and records, whether the staged copy was committed (its destination
//! new to the base) or refused by the base and made as usual (the
//! destination there already, under a symlink, an owner by name), and
//! whether it read an earlier state of its source stage that the later
//! steps left alone or one they changed (then dropped). After an edit
//! that reruns only the source stage's last step, the staged copy's
//! checksum, read from the state an earlier (cached) step made, finds the
//! step by its content key and the copy itself is never made. A layer
//! made ahead from a staged tree (while the steps it waits for still
//! run) is byte for byte the layer of the snapshot its step commits, with
//! and without `SOURCE_DATE_EPOCH`, and one whose later-steps check fails
//! is not used. As root: the copies keep their files' owners.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rbuild_cache::Store;
use rbuild_exporter::{Compression, ExportOptions};
use rbuild_solver::{Layer, Progress, StagedLayers, StagedWork, VertexStatus};
use sha2::{Digest, Sha256};

/// Stages copied from into a final stage on a base with /usr (0750),
/// /etc/passwd and a /lib -> usr symlink: new destinations (below existing
/// and new ancestors, numeric owner, a mode) and ones the base refuses;
/// `/deps` of `deps` is complete before its last step, and so is that of
/// `touched` until its last step writes below it: a copy of many files,
/// which takes far longer than the staged copy's look at the state before
/// it (a one-file copy there could end first, and the staged copy then
/// read the stage's last state and be taken).
const DOCKERFILE: &str = "\
FROM scratch AS deps
COPY deps/ /deps/
COPY out /out/
FROM scratch AS touched
COPY deps/ /deps/
COPY many/ /deps/out/
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
    for n in 0..3000 {
        write(&dir.join(format!("many/f{n}")), &format!("{n}\n"));
    }
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
    let silent = Arc::new(Watch::default());
    solve_watched(store, DOCKERFILE, context, stage_copies, silent).await
}

/// [`solve`] of `dockerfile` in the store at `store` (new or not), its
/// progress told to `watch`.
async fn solve_watched(
    store: &Path,
    dockerfile: &str,
    context: &Path,
    stage_copies: bool,
    watch: Arc<Watch>,
) -> (Vec<String>, Vec<String>) {
    let store = Store::open(store).unwrap();
    let epoch = 1_700_000_000;
    let setup = common::Setup {
        max_parallel_runs: 2,
        epoch: Some(epoch),
        stage_copies,
        progress: Some(watch),
    };
    let solver = common::solver(store.clone(), dockerfile, context, setup).await;
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

/// Makes the layer of every staged tree ahead, as a build's early
/// exports do, and notes each layer a step made (node, snapshot, whether
/// it is the staged tree taken).
struct Ahead {
    store: Store,
    opts: ExportOptions,
    blobs: Mutex<HashMap<usize, String>>,
    made: Mutex<Vec<(usize, String, bool)>>,
}

impl StagedLayers for Ahead {
    fn wants(&self, _: usize, _: bool) -> bool {
        true
    }
    fn pre_export(&self, node: usize, tree: &Path) -> bool {
        let blob = rbuild_exporter::export_tree(&self.store, tree, &self.opts).unwrap();
        let digest = blob.digest().to_string();
        self.blobs.lock().unwrap().insert(node, digest);
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_made_ahead_from_a_staged_tree_is_the_committed_snapshots_layer() {
    for epoch in [Some(1_700_000_000), None] {
        let dir = tempfile::tempdir().unwrap();
        let context = dir.path().join("context");
        make_context(&context);
        let store = Store::open(&dir.path().join("store")).unwrap();
        let watch = Arc::new(Watch::default());
        let setup = common::Setup {
            max_parallel_runs: 2,
            epoch,
            stage_copies: true,
            progress: Some(watch.clone()),
        };
        let mut solver = common::solver(store.clone(), DOCKERFILE, &context, setup).await;
        let opts = ExportOptions {
            compression: Compression::Uncompressed,
            source_date_epoch: epoch,
            oci_mediatypes: true,
        };
        let ahead = Arc::new(Ahead {
            store: store.clone(),
            opts,
            blobs: Mutex::default(),
            made: Mutex::default(),
        });
        solver.on_tree_staged(ahead.clone());
        let told = ahead.clone();
        solver.on_layer_made(Box::new(move |node, id, staged| {
            told.made
                .lock()
                .unwrap()
                .push((node, id.to_string(), staged));
        }));
        solver.solve(std::future::pending()).await.unwrap();
        let blobs = ahead.blobs.lock().unwrap().clone();
        let made = ahead.made.lock().unwrap().clone();
        let taken: Vec<_> = made.iter().filter(|(.., staged)| *staged).collect();
        // /app, /usr/lib/app, /opt/deps, /usr/share/one: new to the base.
        assert_eq!(taken.len(), 4, "{epoch:?}: {made:?}");
        for (node, id, _) in taken {
            let ahead_digest = &blobs[node];
            let hex = ahead_digest.strip_prefix("sha256:").unwrap();
            let bytes = std::fs::read(store.root().join("blobs/sha256").join(hex)).unwrap();
            assert_eq!(
                format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
                *ahead_digest
            );
            // No layer record yet: made now from the committed snapshot.
            let in_turn = rbuild_exporter::export_layer(&store, id, &opts).unwrap();
            assert_eq!(
                in_turn.blob.digest.to_string(),
                *ahead_digest,
                "{epoch:?} node {node}"
            );
            assert_eq!(in_turn.blob.size, bytes.len() as u64);
        }
        // Made ahead from the earlier state of `touched`, whose last step
        // then wrote below /deps: the check failed, the copy was made in
        // turn and the blob made ahead is not its layer.
        let touched = watch.node("/usr/lib/touched");
        let (_, id, staged) = made.iter().find(|(n, ..)| *n == touched).unwrap();
        assert!(!staged);
        let in_turn = rbuild_exporter::export_layer(&store, id, &opts).unwrap();
        assert_ne!(in_turn.blob.digest.to_string(), blobs[&touched]);
        drop(store);
        let report = Store::open(&dir.path().join("store"))
            .unwrap()
            .fsck(false)
            .unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

/// What a solve told of its steps: each step's name by node, when each
/// ended and how, and the spans of staged work.
#[derive(Default)]
struct Watch {
    names: Mutex<Vec<(usize, String)>>,
    ended: Mutex<Vec<(usize, VertexStatus, SystemTime)>>,
    staged: Mutex<Vec<(usize, StagedWork, SystemTime)>>,
}

impl Progress for Watch {
    fn started(&self, index: usize, name: &str, _: &[usize]) {
        self.names.lock().unwrap().push((index, name.to_string()));
    }
    fn staged(&self, index: usize, work: StagedWork, started: SystemTime, _: SystemTime) {
        self.staged.lock().unwrap().push((index, work, started));
    }
    fn log(&self, _: usize, _: &[u8]) {}
    fn finished(&self, index: usize, _: &str, status: VertexStatus) {
        let now = SystemTime::now();
        self.ended.lock().unwrap().push((index, status, now));
    }
}

impl Watch {
    /// The node of the step whose name holds `part`.
    fn node(&self, part: &str) -> usize {
        let names = self.names.lock().unwrap();
        let found = names.iter().find(|(_, name)| name.contains(part));
        found
            .unwrap_or_else(|| panic!("no step {part}: {names:?}"))
            .0
    }

    /// How step `part` ended, and when.
    fn ended(&self, part: &str) -> (VertexStatus, SystemTime) {
        let node = self.node(part);
        let ended = self.ended.lock().unwrap();
        let (_, status, at) = ended.iter().find(|(n, ..)| *n == node).unwrap();
        (*status, *at)
    }

    /// When each piece of work staged for step `part` started.
    fn staged(&self, part: &str) -> Vec<(StagedWork, SystemTime)> {
        let node = self.node(part);
        let staged = self.staged.lock().unwrap();
        (staged.iter().filter(|(n, ..)| *n == node))
            .map(|&(_, work, at)| (work, at))
            .collect()
    }
}

/// w3's shape: a stage whose `/deps` is made early and left alone by its
/// last step, a copy of many source files, and a final stage that copies
/// `/deps`. An edit of a source file reruns that last step only: `COPY
/// deps/` is found in the cache, and `COPY lock` under it never made.
const EDITED: &str = "\
FROM scratch AS build
COPY lock /lock
COPY deps/ /deps/
COPY src/ /src/
FROM scratch
COPY --from=build /deps /usr/lib/app
";

const FINAL_COPY: &str = "COPY --from=build /deps";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_edit_a_staged_copy_is_found_by_its_checksum_and_never_made() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    write(&context.join("lock"), "lock\n");
    for n in 0..20 {
        write(
            &context.join(format!("deps/lib{n}.so")),
            &format!("lib {n}\n"),
        );
    }
    // Enough files that their copy takes far longer than the checksum of
    // /deps, which is staged as soon as `COPY deps/` is found.
    for n in 0..3000 {
        write(
            &context.join(format!("src/f{n}.c")),
            &format!("int f{n};\n"),
        );
    }
    let (staged, in_turn) = (dir.path().join("staged"), dir.path().join("in-turn"));
    let cold = Arc::new(Watch::default());
    solve_watched(&staged, EDITED, &context, true, cold.clone()).await;
    solve_watched(&in_turn, EDITED, &context, false, Arc::default()).await;
    let works: Vec<StagedWork> = cold.staged(FINAL_COPY).iter().map(|s| s.0).collect();
    assert_eq!(
        works,
        [StagedWork::Checksum, StagedWork::Copy],
        "a cold build copies"
    );

    write(&context.join("src/f7.c"), "int edited;\n");
    let edit = Arc::new(Watch::default());
    let after = solve_watched(&staged, EDITED, &context, true, edit.clone()).await;
    let after_in_turn = solve_watched(&in_turn, EDITED, &context, false, Arc::default()).await;
    assert_eq!(
        after, after_in_turn,
        "the same layers and records either way"
    );
    assert_eq!(edit.ended("COPY lock").0, VertexStatus::Cached);
    assert_eq!(edit.ended("COPY deps/").0, VertexStatus::Cached);
    assert!(matches!(edit.ended("COPY src/").0, VertexStatus::Done(_)));
    assert_eq!(
        edit.ended(FINAL_COPY).0,
        VertexStatus::Cached,
        "found by its content key"
    );
    let works = edit.staged(FINAL_COPY);
    let kinds: Vec<StagedWork> = works.iter().map(|s| s.0).collect();
    assert_eq!(kinds, [StagedWork::Checksum], "the copy is not made");
    assert!(
        works[0].1 < edit.ended("COPY src/").1,
        "the checksum read the state `COPY deps/` made, not waiting for the stage's last step"
    );
}

/// A RUN that makes /build (its mtime fixed) below a copy of context files
/// into /build/src: the copy is staged while the RUN runs, then /build is
/// copied up into its snapshot.
const ONTO_RUN: &str = r#"
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "mkdir -p /build && echo x > /build/made && touch -d '2020-01-02 03:04:05' /build"]
COPY src/ /build/src/
"#;

/// Every entry of the snapshot `dir`: path, kind, owner, mode, size, link
/// count and, but for directories other than `build`, mtime.
fn tree_of(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = path.symlink_metadata().unwrap();
        let rel = path.strip_prefix(dir).unwrap().display().to_string();
        let timed = !meta.is_dir() || rel == "build";
        if meta.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        out.push(format!(
            "{rel} {:o} {}:{} {} {} {}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            if meta.is_dir() { 0 } else { meta.len() },
            meta.nlink() * u64::from(!meta.is_dir()),
            if timed {
                meta.mtime_nsec() + meta.mtime() * 1_000_000_000
            } else {
                0
            },
        ));
    }
    out.sort();
    out
}

/// Solves [`ONTO_RUN`] in the store at `store`, staging copies or not: the
/// layer digests and content keys (as [`solve_watched`]), the tree of the
/// copy's snapshot, and whether the copy was staged.
async fn solve_onto_run(
    store: &Path,
    context: &Path,
    stage_copies: bool,
) -> ((Vec<String>, Vec<String>), Vec<String>, bool) {
    let watch = Arc::new(Watch::default());
    let solved = solve_watched(store, ONTO_RUN, context, stage_copies, watch.clone()).await;
    let snapshots = Store::open(store).unwrap().root().join("snapshots");
    let copies = (std::fs::read_dir(&snapshots).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|s| s.join("build/src").is_dir());
    // The newest copy: that of this solve.
    let newest = copies
        .max_by_key(|s| s.symlink_metadata().unwrap().modified().unwrap())
        .unwrap();
    let spans = watch.staged("COPY src/");
    let staged = spans.iter().map(|s| s.0).eq([StagedWork::Copy]);
    (solved, tree_of(&newest), staged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_copy_staged_onto_a_run_makes_the_snapshot_a_copy_in_turn_makes() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    write(&context.join("Dockerfile"), ONTO_RUN);
    std::fs::copy("/bin/busybox", context.join("busybox")).unwrap();
    for n in 0..300 {
        write(
            &context.join(format!("src/m{}/f{n}.c", n % 7)),
            &format!("int f{n};\n"),
        );
    }
    std::fs::set_permissions(
        context.join("src/m3"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let (staged, in_turn) = (dir.path().join("staged"), dir.path().join("in-turn"));
    for edit in [false, true] {
        if edit {
            write(&context.join("src/m0/f0.c"), "int edited;\n");
        }
        let (made, tree, was_staged) = solve_onto_run(&staged, &context, true).await;
        let (made_in_turn, tree_in_turn, _) = solve_onto_run(&in_turn, &context, false).await;
        assert!(was_staged, "the copy was staged (edit: {edit})");
        assert_eq!(made, made_in_turn, "layers and records (edit: {edit})");
        assert_eq!(tree, tree_in_turn, "the copy's snapshot (edit: {edit})");
        let unchanged = tree
            .iter()
            .find(|e| e.starts_with("build/src/m1/f1.c "))
            .unwrap();
        let links = if edit { " 2 " } else { " 1 " };
        assert!(
            unchanged.contains(links),
            "an unchanged file is shared with the copy made before after an edit: {unchanged}"
        );
    }
}
