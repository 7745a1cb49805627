//! Layer export throughput, beside the raw compressors measured in the same
//! run: the deterministic tar of a snapshot, then its gzip (rbuild's
//! parallel members) and zstd, against flate2's single-stream gzip and
//! zstd on the same bytes. Size with `RBUILD_BENCH_MB` (default 1024).
//! Run with `cargo bench -p rbuild-exporter`.

use std::io::Write;
use std::time::{Duration, Instant};

use rbuild_cache::Store;
use rbuild_exporter::{Compression, ExportOptions, export_layer, parallel_gzip};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let mb: usize = std::env::var("RBUILD_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::Builder::new()
        .prefix("rbuild-bench")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    // A snapshot of 4 MiB files: half text-like (compressible), half noise.
    let pending = store.new_snapshot().expect("snapshot");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..(mb / 4) {
        let mut buf = Vec::with_capacity(4 << 20);
        while buf.len() < 4 << 20 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if i % 2 == 0 {
                buf.extend_from_slice(format!("line {seed:x} of a text-like file\n").as_bytes());
            } else {
                buf.extend_from_slice(&seed.to_le_bytes());
            }
        }
        std::fs::write(pending.dir().join(format!("f{i:05}")), &buf).expect("write");
    }
    pending.commit("bench").expect("commit");
    let opts = |c| ExportOptions {
        compression: c,
        source_date_epoch: Some(0),
        oci_mediatypes: true,
    };
    let layer = export_layer(&store, "bench", &opts(Compression::Uncompressed)).expect("export");
    let tar = std::fs::read(store.blob_path(&layer.blob.digest)).expect("tar");
    let size = tar.len() as f64 / 1e6;
    let rate = |d: Duration| size / d.as_secs_f64();
    let runs = 3;

    let ours_gzip = time(runs, || {
        parallel_gzip(&tar[..], std::io::sink(), 6).expect("gzip");
    });
    let raw_gzip = time(runs, || {
        let mut gz = flate2::write::GzEncoder::new(std::io::sink(), flate2::Compression::new(6));
        gz.write_all(&tar).expect("gzip");
        gz.finish().expect("gzip");
    });
    let raw_zstd = time(runs, || {
        zstd::stream::copy_encode(&tar[..], std::io::sink(), 3).expect("zstd");
    });
    let fresh = std::cell::Cell::new(0);
    let ours_zstd = time(runs, || {
        // A new snapshot id each time, so the export is not found recorded.
        let id = format!("z{}", fresh.get());
        fresh.set(fresh.get() + 1);
        std::fs::rename(
            store.snapshot_path(if fresh.get() == 1 { "bench" } else { "prev" }),
            store.snapshot_path(&id),
        )
        .expect("rename");
        export_layer(&store, &id, &opts(Compression::Zstd(3))).expect("export");
        std::fs::rename(store.snapshot_path(&id), store.snapshot_path("prev")).expect("rename");
    });
    println!(
        "layer of {size:.0} MB on {} threads:",
        rayon::current_num_threads()
    );
    println!(
        "  gzip-6: rbuild parallel members {:.0} MB/s, flate2 single stream {:.0} MB/s (ratio {:.2})",
        rate(ours_gzip),
        rate(raw_gzip),
        raw_gzip.as_secs_f64() / ours_gzip.as_secs_f64()
    );
    println!(
        "  zstd-3: rbuild export (tar + zstd) {:.0} MB/s, zstd on the finished tar {:.0} MB/s (ratio {:.2})",
        rate(ours_zstd),
        rate(raw_zstd),
        raw_zstd.as_secs_f64() / ours_zstd.as_secs_f64()
    );
}
