//! `--output`/`-o` of `rbuild build`, as `docker buildx build` reads it:
//! `type=image|registry|oci|docker|local|tar` with `dest=`, `push=`,
//! `name=`, `tar=`, `compression=`, `compression-level=`; a bare path means
//! `type=local,dest=PATH`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use oci_spec::image::Descriptor;
use rbuild_registry::{ClientOptions, Reference};

use rbuild_exporter::Compression;
use rbuild_frontend::quote;

use super::push::compression;
use super::session::Session;

/// One parsed output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// `image`, `oci`, `docker`, `local` or `tar`.
    pub kind: String,
    /// Its options.
    pub options: BTreeMap<String, String>,
}

impl Output {
    /// Parses one `--output` value.
    pub fn parse(value: &str) -> anyhow::Result<Self> {
        if !value.contains('=') {
            return Ok(Self {
                kind: String::from("local"),
                options: BTreeMap::from([(String::from("dest"), value.to_string())]),
            });
        }
        let mut options = BTreeMap::new();
        for part in value.split(',') {
            let (k, v) = part.split_once('=').with_context(|| {
                format!("invalid --output {value:?}: {part:?} is not key=value")
            })?;
            options.insert(k.trim().to_string(), v.trim().to_string());
        }
        let mut kind = options
            .remove("type")
            .unwrap_or_else(|| String::from("local"));
        if kind == "registry" {
            kind = String::from("image");
            options.insert(String::from("push"), String::from("true"));
        }
        if !matches!(kind.as_str(), "image" | "oci" | "docker" | "local" | "tar") {
            bail!(
                "invalid --output {value:?}: unknown type {kind:?} (image, registry, oci, docker, local, tar)"
            );
        }
        if matches!(kind.as_str(), "oci" | "docker" | "local" | "tar")
            && !options.contains_key("dest")
        {
            bail!("invalid --output {value:?}: type={kind} needs dest=");
        }
        let known = [
            "dest",
            "push",
            "name",
            "tar",
            "compression",
            "compression-level",
            "oci-mediatypes",
        ];
        if let Some(k) = options.keys().find(|k| !known.contains(&k.as_str())) {
            bail!("invalid --output {value:?}: unknown option {k:?}");
        }
        let output = Self { kind, options };
        output
            .compression()
            .with_context(|| format!("invalid --output {}", quote::excerpt(value)))?;
        Ok(output)
    }

    /// The layer compression its `compression=` and `compression-level=` ask for.
    fn compression(&self) -> anyhow::Result<Compression> {
        let level = self
            .options
            .get("compression-level")
            .map(|l| {
                l.parse::<i32>().with_context(|| {
                    format!("compression-level={} is not a number", quote::excerpt(l))
                })
            })
            .transpose()?;
        compression(
            self.options
                .get("compression")
                .map_or("gzip", String::as_str),
            level,
        )
    }

    fn flag(&self, name: &str) -> bool {
        self.options.get(name).is_some_and(|v| v == "true")
    }

    fn dest(&self) -> PathBuf {
        PathBuf::from(self.options.get("dest").cloned().unwrap_or_default())
    }

    /// Writes the image (`manifest`, named `tags`) where this output says;
    /// a filesystem tar clamps file times to `epoch` (`SOURCE_DATE_EPOCH`).
    pub fn write(
        &self,
        session: &Session,
        manifest: &Descriptor,
        tags: &[String],
        epoch: Option<i64>,
    ) -> anyhow::Result<()> {
        let store = &session.store;
        let mut names: Vec<String> = tags.to_vec();
        if let Some(n) = self.options.get("name") {
            names.extend(n.split(',').map(str::to_string));
        }
        match self.kind.as_str() {
            "image" => {
                for n in &names {
                    store.tag(n, manifest)?;
                }
                if self.flag("push") {
                    if names.is_empty() {
                        bail!("--push needs a name: give -t or name=");
                    }
                    let comp = self.compression()?;
                    let client = rbuild_registry::Client::new(ClientOptions::default())?;
                    for n in &names {
                        let reference = Reference::parse(n)?;
                        session
                            .runtime
                            .block_on(rbuild_exporter::push_image(
                                store,
                                manifest,
                                &reference,
                                &client,
                                comp,
                                self.options
                                    .get("oci-mediatypes")
                                    .is_some_and(|v| v == "false"),
                            ))
                            .with_context(|| format!("push {n}"))?;
                    }
                }
            }
            "oci" => {
                let name = names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| String::from("latest"));
                let as_tar = self.options.get("tar").is_none_or(|v| v != "false");
                rbuild_exporter::export_oci(store, manifest, &name, &self.dest(), as_tar)?;
            }
            "docker" => {
                let images: Vec<(String, Descriptor)> = names
                    .iter()
                    .map(|n| (n.clone(), manifest.clone()))
                    .collect();
                let file = std::fs::File::create(self.dest())
                    .with_context(|| format!("create {}", self.dest().display()))?;
                rbuild_exporter::save_docker_archive(
                    store,
                    &images,
                    std::io::BufWriter::new(file),
                )?;
            }
            "local" => rbuild_exporter::export_rootfs(store, manifest, &self.dest())?,
            _ => {
                let dest = self.dest();
                if dest.as_os_str() == "-" {
                    rbuild_exporter::export_rootfs_tar(
                        store,
                        manifest,
                        epoch,
                        std::io::stdout().lock(),
                    )?;
                } else {
                    let file = std::fs::File::create(&dest)
                        .with_context(|| format!("create {}", dest.display()))?;
                    rbuild_exporter::export_rootfs_tar(
                        store,
                        manifest,
                        epoch,
                        std::io::BufWriter::new(file),
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_forms() {
        let o = Output::parse("type=oci,dest=out.tar").unwrap();
        assert_eq!(
            (o.kind.as_str(), o.options["dest"].as_str()),
            ("oci", "out.tar")
        );
        assert_eq!(Output::parse("./dir").unwrap().kind, "local");
        let r = Output::parse("type=registry").unwrap();
        assert_eq!(
            (r.kind.as_str(), r.options["push"].as_str()),
            ("image", "true")
        );
        assert!(Output::parse("type=nope,dest=x").is_err());
        assert!(Output::parse("type=docker").is_err());
        assert!(Output::parse("type=oci,dest=x,bogus=1").is_err());
    }

    #[test]
    fn compression_level_is_checked_when_parsed() {
        // Panicked in the compressor, after the whole build, before.
        let e = Output::parse("type=registry,compression-level=12")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid --output"), "{e}");
        let o = Output::parse("type=registry,compression=zstd,compression-level=12").unwrap();
        assert_eq!(o.compression().unwrap(), Compression::Zstd(12));
        assert!(Output::parse("type=registry,compression-level=99999999999").is_err());
        assert!(Output::parse("type=registry,compression=zstd,compression-level=23").is_err());
    }
}
