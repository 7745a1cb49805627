//! Context checksums of 20,000 files (4 KiB each): cold (every file read
//! and hashed), warm (the stat fast path), beside a plain walk + stat and
//! blake3 over the same bytes, all in the same run.
//! Run with `cargo bench -p rbuild-solver`.

use std::time::{Duration, Instant};

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
    let dir = tempfile::Builder::new()
        .prefix("rbuild-bench")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    let ctx = dir.path().join("ctx");
    let mut total = 0usize;
    for d in 0..100 {
        let sub = ctx.join(format!("d{d:03}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for f in 0..200 {
            let data = format!("{d}/{f} ").repeat(600);
            total += data.len();
            std::fs::write(sub.join(format!("f{f:03}.txt")), data).expect("write");
        }
    }
    // Old enough for the hash cache to trust them.
    std::thread::sleep(Duration::from_millis(2100));
    let store = rbuild_cache::Store::open(&dir.path().join("store")).expect("store");
    let cold = time(3, || {
        rbuild_solver::checksum_dir(&ctx, None).expect("checksum");
    });
    let hashes = store.file_hashes("bench");
    rbuild_solver::checksum_dir(&ctx, Some(&hashes)).expect("prime");
    let warm = time(5, || {
        rbuild_solver::checksum_dir(&ctx, Some(&hashes)).expect("checksum");
    });
    let walk = time(5, || {
        let n = walkdir::WalkDir::new(&ctx)
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|e| e.path().symlink_metadata().ok())
            .count();
        std::hint::black_box(n);
    });
    let bytes: Vec<u8> = vec![7; total];
    let b3 = time(5, || {
        std::hint::black_box(blake3::hash(&bytes));
    });
    println!("context of 20,000 files ({:.0} MB):", total as f64 / 1e6);
    println!(
        "  cold checksum {:.1} ms, warm (stat fast path) {:.1} ms",
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3
    );
    println!(
        "  same run: walk + lstat {:.1} ms, blake3 of {:.0} MB in memory {:.1} ms (warm/walk {:.2})",
        walk.as_secs_f64() * 1e3,
        total as f64 / 1e6,
        b3.as_secs_f64() * 1e3,
        warm.as_secs_f64() / walk.as_secs_f64()
    );
}
