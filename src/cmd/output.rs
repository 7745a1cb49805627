//! `--output`/`-o` of `rbuild build`, as `docker buildx build` reads it:
//! `type=image|registry|oci|docker|local|tar` with `dest=`, `push=`,
//! `name=`, `tar=`, `compression=`, `compression-level=`,
//! `oci-mediatypes=`; a bare path means `type=local,dest=PATH`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use rbuild_build::{Output, PushOptions, TarDest};
use rbuild_exporter::Compression;
use rbuild_frontend::quote;

use crate::compression::compression;

/// The options each output type takes.
const KNOWN: [&str; 8] = [
    "dest",
    "push",
    "name",
    "tar",
    "compression",
    "compression-level",
    "oci-mediatypes",
    "push-by-digest",
];

/// Parses one `--output` value.
pub fn parse(value: &str) -> anyhow::Result<Output> {
    if value == "-" {
        // `docker build -o -`: the filesystem as a tar on standard output.
        return Ok(Output::Tar {
            dest: TarDest::Stdout,
        });
    }
    if !value.contains('=') {
        return Ok(Output::Local {
            dest: PathBuf::from(value),
        });
    }
    let mut options = BTreeMap::new();
    for part in value.split(',') {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("invalid --output {value:?}: {part:?} is not key=value"))?;
        options.insert(k.trim().to_string(), v.trim().to_string());
    }
    let kind = options
        .remove("type")
        .unwrap_or_else(|| String::from("local"));
    if kind == "registry" {
        options.insert(String::from("push"), String::from("true"));
    }
    if let Some(k) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        bail!("invalid --output {value:?}: unknown option {k:?}");
    }
    let compression = layer_compression(&options)
        .with_context(|| format!("invalid --output {}", quote::excerpt(value)))?;
    let flag = |name: &str| options.get(name).is_some_and(|v| v == "true");
    let names: Vec<String> = options
        .get("name")
        .map(|n| n.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let dest = || {
        options
            .get("dest")
            .map(PathBuf::from)
            .with_context(|| format!("invalid --output {value:?}: type={kind} needs dest="))
    };
    Ok(match kind.as_str() {
        "image" | "registry" => Output::Image {
            names,
            push: flag("push").then(|| PushOptions {
                compression,
                docker_media_types: options.get("oci-mediatypes").is_some_and(|v| v == "false"),
                by_digest: flag("push-by-digest"),
            }),
        },
        "oci" => Output::Oci {
            dest: dest()?,
            tar: options.get("tar").is_none_or(|v| v != "false"),
            names,
        },
        "docker" => Output::Docker {
            dest: dest()?,
            names,
        },
        "local" => Output::Local { dest: dest()? },
        "cacheonly" => Output::CacheOnly,
        "tar" => Output::Tar {
            dest: match dest()? {
                d if d.as_os_str() == "-" => TarDest::Stdout,
                d => TarDest::File(d),
            },
        },
        _ => bail!(
            "invalid --output {value:?}: unknown type {kind:?} (image, registry, oci, docker, local, tar, cacheonly)"
        ),
    })
}

/// The layer compression `compression=` and `compression-level=` ask for.
fn layer_compression(options: &BTreeMap<String, String>) -> anyhow::Result<Compression> {
    let level = options
        .get("compression-level")
        .map(|l| {
            l.parse::<i32>()
                .with_context(|| format!("compression-level={} is not a number", quote::excerpt(l)))
        })
        .transpose()?;
    compression(
        options.get("compression").map_or("gzip", String::as_str),
        level,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_forms() {
        assert_eq!(
            parse("type=oci,dest=out.tar").unwrap(),
            Output::Oci {
                dest: PathBuf::from("out.tar"),
                tar: true,
                names: vec![]
            }
        );
        assert_eq!(
            parse("./dir").unwrap(),
            Output::Local {
                dest: PathBuf::from("./dir")
            }
        );
        let Output::Image {
            push: Some(push), ..
        } = parse("type=registry").unwrap()
        else {
            panic!("type=registry pushes");
        };
        assert_eq!(push.compression, Compression::Gzip(6));
        assert!(!push.docker_media_types);
        assert_eq!(
            parse("-").unwrap(),
            Output::Tar {
                dest: TarDest::Stdout
            }
        );
        assert_eq!(parse("type=cacheonly").unwrap(), Output::CacheOnly);
        assert_eq!(
            parse("type=tar,dest=-").unwrap(),
            Output::Tar {
                dest: TarDest::Stdout
            }
        );
        assert!(parse("type=nope,dest=x").is_err());
        assert!(parse("type=docker").is_err());
        assert!(parse("type=oci,dest=x,bogus=1").is_err());
    }

    #[test]
    fn compression_level_is_checked_when_parsed() {
        // Panicked in the compressor, after the whole build, before.
        let e = parse("type=registry,compression-level=12")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid --output"), "{e}");
        let Output::Image {
            push: Some(push), ..
        } = parse("type=registry,compression=zstd,compression-level=12").unwrap()
        else {
            panic!("type=registry pushes");
        };
        assert_eq!(push.compression, Compression::Zstd(12));
        assert!(parse("type=registry,compression-level=99999999999").is_err());
        assert!(parse("type=registry,compression=zstd,compression-level=23").is_err());
    }
}
