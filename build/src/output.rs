//! Where a built image goes (`--output` of `docker buildx build`): the
//! store, tagged and maybe pushed; an OCI layout; a docker archive; the
//! final filesystem as a directory or a tar.

use std::path::PathBuf;

use oci_spec::image::Descriptor;
use rbuild_exporter::Compression;
use rbuild_image::Reference;
use rbuild_registry::ClientOptions;

use crate::error::io;
use crate::{BuildError, Session};

/// One destination of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The store, named with the build's tags and `names`; pushed to each
    /// name's registry when `push` is set (`type=image|registry`).
    Image {
        /// More names (`name=`).
        names: Vec<String>,
        /// Push, and how.
        push: Option<PushOptions>,
    },
    /// An OCI image layout (`type=oci`), tagged with the first name.
    Oci {
        /// The file or directory.
        dest: PathBuf,
        /// A tar of the layout (default) or the directory itself.
        tar: bool,
        /// More names (`name=`).
        names: Vec<String>,
    },
    /// A docker archive (`type=docker`) naming the image with every name.
    Docker {
        /// The file.
        dest: PathBuf,
        /// More names (`name=`).
        names: Vec<String>,
    },
    /// The final filesystem as plain files (`type=local`).
    Local {
        /// The directory.
        dest: PathBuf,
    },
    /// The final filesystem as one tar (`type=tar`), file times clamped to
    /// the build's `SOURCE_DATE_EPOCH`.
    Tar {
        /// The file, or standard output.
        dest: TarDest,
    },
    /// Nothing beyond the build cache (`type=cacheonly`): the steps are
    /// cached, the image is neither named nor exported.
    CacheOnly,
}

/// Where a `type=tar` output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarDest {
    /// A file.
    File(PathBuf),
    /// Standard output (`dest=-`).
    Stdout,
}

/// How an image is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOptions {
    /// The compression of layers stored uncompressed.
    pub compression: Compression,
    /// Docker schema 2 media types instead of OCI's (`oci-mediatypes=false`).
    pub docker_media_types: bool,
    /// Pushed untagged, by digest only (`push-by-digest=true`), for a
    /// later `rbuild manifest create`.
    pub by_digest: bool,
}

impl Output {
    /// Whether it writes to standard output (`type=tar,dest=-`, `-o -`).
    pub fn writes_stdout(&self) -> bool {
        matches!(
            self,
            Output::Tar {
                dest: TarDest::Stdout
            }
        )
    }

    /// What the progress display says was done (`exporting to oci out.tar`);
    /// `None` for the store, whose names are said one by one.
    pub(crate) fn done_note(&self) -> Option<String> {
        let (kind, dest) = match self {
            Output::Image { .. } => return None,
            Output::CacheOnly => return Some(String::from("cache only: nothing exported")),
            Output::Oci { dest, .. } => ("oci", dest.display().to_string()),
            Output::Docker { dest, .. } => ("docker", dest.display().to_string()),
            Output::Local { dest } => ("local", dest.display().to_string()),
            Output::Tar {
                dest: TarDest::File(dest),
            } => ("tar", dest.display().to_string()),
            Output::Tar {
                dest: TarDest::Stdout,
            } => ("tar", String::from("-")),
        };
        Some(format!("exporting to {kind} {dest} done"))
    }

    /// Fails when this output cannot hold a multi-platform image, saying
    /// why (as buildx refuses them).
    pub(crate) fn check_multi_platform(&self) -> Result<(), BuildError> {
        let why = match self {
            Output::Docker { .. } => {
                "type=docker: a docker archive holds one image per name and docker load cannot take an index; build one --platform, or use type=oci"
            }
            Output::Tar { .. } => {
                "type=tar: one filesystem per tar; build one --platform, or use type=local (one directory per platform)"
            }
            _ => return Ok(()),
        };
        Err(BuildError::MultiPlatform(why))
    }

    /// Writes the image (`manifest`, named `tags`) here; a filesystem tar
    /// clamps file times to `epoch`. Gives what was pushed, with the
    /// digests the registry holds.
    pub(crate) fn write(
        &self,
        session: &Session,
        manifest: &Descriptor,
        tags: &[String],
        epoch: Option<i64>,
    ) -> Result<Vec<Pushed>, BuildError> {
        let mut pushed = Vec::new();
        let store = &session.store;
        let names = |more: &[String]| [tags, more].concat();
        match self {
            Output::Image { names: more, push } => {
                let names = names(more);
                for n in &names {
                    store.tag(n, manifest)?;
                }
                if names.is_empty() {
                    // Found by its id until named or pruned, as Docker's
                    // `<none>` images.
                    store.keep_dangling(manifest)?;
                }
                if let Some(push) = push {
                    if names.is_empty() {
                        return Err(BuildError::PushWithoutName);
                    }
                    let client = rbuild_registry::Client::new(ClientOptions::default())?;
                    for n in &names {
                        let reference = Reference::parse(n)?;
                        let digest = session
                            .runtime
                            .block_on(rbuild_exporter::push_image(
                                store,
                                manifest,
                                &reference,
                                &client,
                                push.compression,
                                push.docker_media_types,
                                push.by_digest,
                            ))
                            .map_err(|source| BuildError::Push {
                                name: n.clone(),
                                source,
                            })?;
                        pushed.push(Pushed {
                            repository: format!("{}/{}", reference.registry, reference.repository),
                            digest,
                            by_digest: push.by_digest,
                        });
                    }
                }
            }
            Output::Oci {
                dest,
                tar,
                names: more,
            } => {
                let name = names(more)
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| String::from("latest"));
                rbuild_exporter::export_oci(store, manifest, &name, dest, *tar)?;
            }
            Output::Docker { dest, names: more } => {
                let images: Vec<(String, Descriptor)> = names(more)
                    .into_iter()
                    .map(|n| (n, manifest.clone()))
                    .collect();
                let file = std::fs::File::create(dest)
                    .map_err(io(format!("create {}", dest.display())))?;
                rbuild_exporter::save_docker_archive(
                    store,
                    &images,
                    std::io::BufWriter::new(file),
                )?;
            }
            Output::Local { dest } => {
                let images = rbuild_exporter::index_manifests(store, manifest)?;
                for (desc, platform) in &images {
                    // As buildx: one directory per platform (`linux_arm64`).
                    let dir = match platform {
                        Some(p) if images.len() > 1 => dest.join(p.to_string().replace('/', "_")),
                        _ => dest.clone(),
                    };
                    rbuild_exporter::export_rootfs(store, desc, &dir)?;
                }
            }
            Output::CacheOnly => {}
            Output::Tar {
                dest: TarDest::Stdout,
            } => rbuild_exporter::export_rootfs_tar(
                store,
                manifest,
                epoch,
                std::io::stdout().lock(),
            )?,
            Output::Tar {
                dest: TarDest::File(dest),
            } => {
                let file = std::fs::File::create(dest)
                    .map_err(io(format!("create {}", dest.display())))?;
                rbuild_exporter::export_rootfs_tar(
                    store,
                    manifest,
                    epoch,
                    std::io::BufWriter::new(file),
                )?;
            }
        }
        Ok(pushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_notes_name_the_kind_and_destination() {
        let tar = Output::Tar {
            dest: TarDest::Stdout,
        };
        assert_eq!(tar.done_note().unwrap(), "exporting to tar - done");
        let oci = Output::Oci {
            dest: PathBuf::from("out.tar"),
            tar: true,
            names: vec![],
        };
        assert_eq!(oci.done_note().unwrap(), "exporting to oci out.tar done");
        let image = Output::Image {
            names: vec![],
            push: None,
        };
        assert_eq!(image.done_note(), None);
    }
}

/// An image a registry output pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// `registry/repository`.
    pub(crate) repository: String,
    /// The manifest digest the registry holds.
    pub(crate) digest: String,
    /// Pushed untagged (`push-by-digest=true`).
    pub(crate) by_digest: bool,
}
