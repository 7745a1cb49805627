//! Layer unpack throughput beside `tar -x` of the same archive in the same
//! run: a generated layer of 256 MiB (64 KiB files) as plain tar and gzip.
//! Run with `cargo bench -p rbuild-cache`.

use std::io::Write;
use std::time::{Duration, Instant};

use rbuild_cache::{BlobInfo, Store};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("rbuild-bench")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    let mut builder = tar::Builder::new(Vec::new());
    let mut seed = 1u64;
    for i in 0..4096 {
        let mut data = Vec::with_capacity(64 << 10);
        while data.len() < 64 << 10 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            data.extend_from_slice(format!("{seed:x}\n").as_bytes());
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        builder
            .append_data(&mut h, format!("d{}/f{i}", i % 64), &data[..])
            .expect("append");
    }
    let tar_bytes = builder.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_bytes).expect("gzip");
    let gz_bytes = gz.finish().expect("gzip");
    let mb = tar_bytes.len() as f64 / 1e6;
    for (name, bytes, tar_flag) in [("plain", &tar_bytes, "-xf"), ("gzip", &gz_bytes, "-xzf")] {
        let archive = dir.path().join(format!("layer.{name}"));
        std::fs::write(&archive, bytes).expect("write");
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for run in 0..3 {
            let store =
                Store::open(&dir.path().join(format!("store-{name}-{run}"))).expect("store");
            let blob: BlobInfo = store.put_blob(bytes).expect("blob");
            let t = Instant::now();
            store
                .unpack_layer(&blob, "application/vnd.oci.image.layer.v1.tar")
                .expect("unpack");
            ours.push(t.elapsed());
            let out = dir.path().join(format!("tar-{name}-{run}"));
            std::fs::create_dir(&out).expect("mkdir");
            let t = Instant::now();
            let ok = std::process::Command::new("tar")
                .arg(tar_flag)
                .arg(&archive)
                .arg("-C")
                .arg(&out)
                .status()
                .expect("tar");
            theirs.push(t.elapsed());
            assert!(ok.success());
        }
        let (a, b) = (median(ours), median(theirs));
        println!(
            "unpack {name} layer of {mb:.0} MB: rbuild {:.0} MB/s, tar -x {:.0} MB/s (ratio {:.2})",
            mb / a.as_secs_f64(),
            mb / b.as_secs_f64(),
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}
