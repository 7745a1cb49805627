//! The export of a one-file edit's layer (issue 19), alone: a w2-like
//! snapshot (16 files of 8 MiB, then 20,000 files of 0.5–7.5 KB in 400
//! directories, about 227 MB of tar), exported once; then, alternated
//! run for run, the full export of a hard-link copy of it with one file
//! of `src/d007` changed, the export of another such copy reusing the
//! previous blob, and `tar -cf - | sha256sum` of the same tree. Medians
//! of `RBUILD_BENCH_RUNS` (default 5). Store in /var/tmp (disk).
//! Run with `cargo bench -p rbuild-exporter --bench reuse`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rbuild_cache::Store;
use rbuild_exporter::{Compression, ExportOptions, export_layer_with_stats};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}

/// Text of about `len` bytes from `seed`.
fn text(seed: &mut u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(format!("word {:x} ", *seed % 65_536).as_bytes());
    }
    out
}

/// Makes `to` a copy of `from` whose files are hard links (as a COPY
/// sharing unchanged files makes it), directories with the same mtimes.
fn mirror(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).min_depth(1) {
        let entry = entry.expect("walk");
        let dest = to.join(entry.path().strip_prefix(from).expect("below"));
        if entry.file_type().is_dir() {
            std::fs::create_dir(&dest).expect("mkdir");
        } else {
            std::fs::hard_link(entry.path(), &dest).expect("link");
        }
    }
    for entry in walkdir::WalkDir::new(from).contents_first(true) {
        let entry = entry.expect("walk");
        if entry.file_type().is_dir() {
            let rel = entry.path().strip_prefix(from).expect("below");
            let mtime = entry.metadata().expect("stat").mtime();
            let t = std::time::UNIX_EPOCH + Duration::from_secs(mtime as u64);
            std::fs::File::open(to.join(rel))
                .and_then(|f| f.set_modified(t))
                .expect("mtime");
        }
    }
}

fn main() {
    let runs: usize = std::env::var("RBUILD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::Builder::new()
        .prefix("rbuild-bench-reuse")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let pending = store.new_snapshot().expect("snapshot");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let root = pending.dir().join("app");
    std::fs::create_dir_all(root.join("assets")).expect("mkdir");
    for i in 0..16 {
        let data = text(&mut seed, 8 << 20);
        std::fs::write(root.join(format!("assets/blob{i:02}.bin")), data).expect("write");
    }
    for i in 0..20_000u64 {
        let d = root.join(format!("src/d{:03}", i % 400));
        std::fs::create_dir_all(&d).expect("mkdir");
        let len = 500 + (seed % 7000) as usize;
        std::fs::write(d.join(format!("f{i:05}.txt")), text(&mut seed, len)).expect("write");
    }
    pending.commit("s0").expect("commit");
    let opts = ExportOptions {
        compression: Compression::Uncompressed,
        source_date_epoch: None,
        oci_mediatypes: true,
    };
    export_layer_with_stats(&store, "s0", &opts).expect("export");

    // Snapshot `id`: `base` mirrored with one file of src/d007 rewritten.
    let edited = |base: &str, id: &str, shares: bool, n: usize| {
        let pending = store.new_snapshot().expect("snapshot");
        mirror(&store.snapshot_path(base), pending.dir());
        let file = pending.dir().join("app/src/d007/f00007.txt");
        let mut data = std::fs::read(&file).expect("read");
        data.extend_from_slice(format!("/* edit {n} */\n").as_bytes());
        std::fs::remove_file(&file).expect("unlink");
        std::fs::write(&file, data).expect("write");
        if shares {
            pending.record_shared_from(base).expect("hint");
        }
        pending.commit(id).expect("commit");
    };
    let (mut full, mut reused, mut tar) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = String::from("s0");
    let mut stats = None;
    for n in 1..=runs {
        let (plain, next) = (format!("full{n}"), format!("s{n}"));
        edited(&last, &plain, false, n);
        edited(&last, &next, true, n);
        let t = Instant::now();
        export_layer_with_stats(&store, &plain, &opts).expect("export");
        full.push(t.elapsed());
        let t = Instant::now();
        let (_, s) = export_layer_with_stats(&store, &next, &opts).expect("export");
        reused.push(t.elapsed());
        stats = s;
        let t = Instant::now();
        let ok = Command::new("sh")
            .arg("-c")
            .arg("tar -cf - -C \"$0\" . | sha256sum >/dev/null")
            .arg(store.snapshot_path(&next))
            .status()
            .expect("tar");
        assert!(ok.success());
        tar.push(t.elapsed());
        last = next;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "one-file edit's layer export, median of {runs}, load {}",
        load.trim()
    );
    println!("  full export         {:.3} s", median(full));
    println!(
        "  reusing the blob    {:.3} s  (last run: {stats:?})",
        median(reused)
    );
    println!("  tar | sha256sum     {:.3} s", median(tar));
}
