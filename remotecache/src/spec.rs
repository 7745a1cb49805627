//! `--cache-to` and `--cache-from` values in BuildKit's syntax
//! (`type=registry,ref=REF,mode=max`, a bare `REF` for a registry), read
//! into typed specs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rbuild_exporter::Compression;

use crate::error::CacheError;

/// The tag of a cache in a layout directory when `tag=` is not given.
pub const DEFAULT_TAG: &str = "latest";

/// The compression of cache layers when `compression=` is not given:
/// zstd at level 3, as the issue asks (the README's remote cache section
/// has the measured cost against gzip).
pub const DEFAULT_COMPRESSION: Compression = Compression::Zstd(3);

/// Where a cache is read from (`--cache-from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSource {
    /// A registry reference (`type=registry,ref=REF` or a bare `REF`).
    Registry {
        /// The reference.
        reference: String,
        /// Plain HTTP allowed off loopback (`registry.insecure=true`).
        insecure: bool,
    },
    /// An OCI layout directory and the tag of the cache in it
    /// (`type=local,src=DIR[,tag=T]`).
    Local {
        /// The directory.
        dir: PathBuf,
        /// The tag.
        tag: String,
    },
}

/// Which steps an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The steps of the exported image only.
    Min,
    /// Every step of every stage built, intermediate stages included.
    Max,
}

/// Where a cache is written (`--cache-to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheTarget {
    /// A registry reference.
    Registry {
        /// The reference.
        reference: String,
        /// Plain HTTP allowed off loopback (`registry.insecure=true`).
        insecure: bool,
    },
    /// An OCI layout directory and the tag to give the cache in it.
    Local {
        /// The directory.
        dir: PathBuf,
        /// The tag.
        tag: String,
    },
    /// The image's own config (`type=inline`): the image is the cache.
    Inline,
}

/// A `--cache-to` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    /// Where it goes.
    pub target: CacheTarget,
    /// Which steps it holds (`mode=`, min by default as in BuildKit).
    pub mode: Mode,
    /// How built layers are compressed (`compression=`, `compression-level=`).
    pub compression: Compression,
    /// OCI media types (`oci-mediatypes=true`, the default) or Docker's
    /// for the layers.
    pub oci_mediatypes: bool,
    /// A failed export is a warning instead of a failed build.
    pub ignore_error: bool,
}

impl CacheSource {
    /// The registry host plain HTTP is allowed for (`registry.insecure=true`).
    pub fn insecure_registry(&self) -> Option<String> {
        match self {
            CacheSource::Registry {
                reference,
                insecure: true,
            } => registry_of(reference),
            _ => None,
        }
    }
}

impl CacheExport {
    /// The registry host plain HTTP is allowed for (`registry.insecure=true`).
    pub fn insecure_registry(&self) -> Option<String> {
        match &self.target {
            CacheTarget::Registry {
                reference,
                insecure: true,
            } => registry_of(reference),
            _ => None,
        }
    }
}

fn registry_of(reference: &str) -> Option<String> {
    rbuild_image::Reference::parse(reference)
        .ok()
        .map(|r| r.registry)
}

/// Reads a `--cache-from` value.
pub fn parse_cache_from(text: &str) -> Result<CacheSource, CacheError> {
    if !text.contains('=') {
        return Ok(CacheSource::Registry {
            reference: text.to_string(),
            insecure: false,
        });
    }
    let mut fields = Fields::parse(text)?;
    let source = match fields.take("type").as_deref().unwrap_or("registry") {
        "registry" => CacheSource::Registry {
            reference: fields.required("ref")?,
            insecure: fields.flag("registry.insecure", false)?,
        },
        "local" => CacheSource::Local {
            dir: PathBuf::from(fields.required("src")?),
            tag: fields
                .take("tag")
                .unwrap_or_else(|| DEFAULT_TAG.to_string()),
        },
        other => {
            return Err(fields.error(format!("unknown cache type {other:?} (registry, local)")));
        }
    };
    fields.finish()?;
    Ok(source)
}

/// Reads a `--cache-to` value.
pub fn parse_cache_to(text: &str) -> Result<CacheExport, CacheError> {
    let mut fields = Fields::parse(text)?;
    let target = match fields.take("type").as_deref().unwrap_or("registry") {
        "registry" => CacheTarget::Registry {
            reference: fields.required("ref")?,
            insecure: fields.flag("registry.insecure", false)?,
        },
        "local" => CacheTarget::Local {
            dir: PathBuf::from(fields.required("dest")?),
            tag: fields
                .take("tag")
                .unwrap_or_else(|| DEFAULT_TAG.to_string()),
        },
        "inline" => CacheTarget::Inline,
        other => {
            return Err(fields.error(format!(
                "unknown cache type {other:?} (registry, local, inline)"
            )));
        }
    };
    let mode = match fields.take("mode").as_deref() {
        None | Some("min") => Mode::Min,
        Some("max") if target == CacheTarget::Inline => {
            return Err(fields.error(String::from(
                "type=inline holds the image's steps only (mode=min)",
            )));
        }
        Some("max") => Mode::Max,
        Some(other) => return Err(fields.error(format!("mode={other}: min or max"))),
    };
    let level = match fields.take("compression-level") {
        Some(l) => Some(
            l.parse::<i32>()
                .map_err(|_| fields.error(format!("compression-level={l}: a number")))?,
        ),
        None => None,
    };
    let compression = match (fields.take("compression").as_deref(), level) {
        (None, None) => DEFAULT_COMPRESSION,
        (None | Some("zstd"), l) => Compression::Zstd(checked(&fields, l, 1..=22, 3)?),
        (Some("gzip"), l) => Compression::Gzip(checked(&fields, l, 0..=9, 6)?.unsigned_abs()),
        (Some("uncompressed"), _) => Compression::Uncompressed,
        (Some(other), _) => {
            return Err(fields.error(format!("compression={other}: gzip, zstd or uncompressed")));
        }
    };
    let oci_mediatypes = fields.flag("oci-mediatypes", true)?;
    // The cache is always one image manifest (an OCI artifact); BuildKit's
    // index form has no use outside BuildKit, so the value is only checked.
    fields.flag("image-manifest", true)?;
    let ignore_error = fields.flag("ignore-error", false)?;
    fields.finish()?;
    Ok(CacheExport {
        target,
        mode,
        compression,
        oci_mediatypes,
        ignore_error,
    })
}

/// A level in `range`, `default` when not given.
fn checked(
    fields: &Fields,
    level: Option<i32>,
    range: std::ops::RangeInclusive<i32>,
    default: i32,
) -> Result<i32, CacheError> {
    let level = level.unwrap_or(default);
    if range.contains(&level) {
        Ok(level)
    } else {
        Err(fields.error(format!(
            "compression-level={level}: {}..={} for this compression",
            range.start(),
            range.end()
        )))
    }
}

/// The `key=value` fields of one value, taken one by one; what is left at
/// the end is an error.
struct Fields {
    text: String,
    map: BTreeMap<String, String>,
}

impl Fields {
    fn parse(text: &str) -> Result<Self, CacheError> {
        let mut fields = Fields {
            text: text.to_string(),
            map: BTreeMap::new(),
        };
        for part in text.split(',') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(fields.error(format!("{part:?} is not key=value")));
            };
            if fields
                .map
                .insert(key.trim().to_string(), value.to_string())
                .is_some()
            {
                return Err(fields.error(format!("{key} is given twice")));
            }
        }
        Ok(fields)
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.map.remove(key)
    }

    fn required(&mut self, key: &str) -> Result<String, CacheError> {
        match self.take(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(self.error(format!("{key}= is required"))),
        }
    }

    fn flag(&mut self, key: &str, default: bool) -> Result<bool, CacheError> {
        match self.take(key).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(self.error(format!("{key}={other}: true or false"))),
        }
    }

    fn finish(self) -> Result<(), CacheError> {
        match self.map.keys().next() {
            Some(key) => Err(self.error(format!("unknown option {key:?}"))),
            None => Ok(()),
        }
    }

    fn error(&self, message: String) -> CacheError {
        CacheError::Spec {
            text: self.text.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_cache_from_is_a_registry_and_fields_name_the_others() {
        assert_eq!(
            parse_cache_from("reg:5000/app:cache").unwrap(),
            CacheSource::Registry {
                reference: String::from("reg:5000/app:cache"),
                insecure: false
            }
        );
        assert_eq!(
            parse_cache_from("type=registry,ref=r/app,registry.insecure=true").unwrap(),
            CacheSource::Registry {
                reference: String::from("r/app"),
                insecure: true
            }
        );
        assert_eq!(
            parse_cache_from("type=local,src=/c,tag=t1").unwrap(),
            CacheSource::Local {
                dir: PathBuf::from("/c"),
                tag: String::from("t1")
            }
        );
    }

    #[test]
    fn registry_insecure_names_the_host_plain_http_is_allowed_for() {
        let from = parse_cache_from("type=registry,ref=reg.lan:5000/app,registry.insecure=true");
        assert_eq!(
            from.unwrap().insecure_registry().as_deref(),
            Some("reg.lan:5000")
        );
        let to = parse_cache_to("type=registry,ref=reg.lan/app:c,registry.insecure=true");
        assert_eq!(to.unwrap().insecure_registry().as_deref(), Some("reg.lan"));
        assert_eq!(
            parse_cache_from("reg.lan/app").unwrap().insecure_registry(),
            None
        );
        let local = parse_cache_to("type=local,dest=/d").unwrap();
        assert_eq!(local.insecure_registry(), None);
    }

    #[test]
    fn cache_to_has_buildkits_defaults_but_zstd() {
        let e = parse_cache_to("type=registry,ref=r/app:cache").unwrap();
        assert_eq!(e.mode, Mode::Min);
        assert_eq!(e.compression, Compression::Zstd(3));
        assert!(e.oci_mediatypes && !e.ignore_error);
        let e = parse_cache_to(
            "type=local,dest=/d,mode=max,compression=gzip,compression-level=9,ignore-error=true",
        )
        .unwrap();
        assert_eq!(
            e.target,
            CacheTarget::Local {
                dir: PathBuf::from("/d"),
                tag: String::from(DEFAULT_TAG)
            }
        );
        assert_eq!((e.mode, e.compression), (Mode::Max, Compression::Gzip(9)));
        assert!(e.ignore_error);
        assert_eq!(
            parse_cache_to("type=inline").unwrap().target,
            CacheTarget::Inline
        );
        let e = parse_cache_to("ref=r/a,compression=uncompressed").unwrap();
        assert_eq!(e.compression, Compression::Uncompressed);
    }

    #[test]
    fn bad_cache_values_say_what_is_wrong() {
        for (text, expected) in [
            ("type=s3,ref=x", "unknown cache type"),
            ("type=inline,mode=max", "mode=min"),
            ("type=registry", "ref= is required"),
            ("type=local,src=/x", "dest= is required"),
            ("ref=x,mode=all", "min or max"),
            ("ref=x,compression=lz4", "gzip, zstd or uncompressed"),
            ("ref=x,compression=gzip,compression-level=12", "0..=9"),
            ("ref=x,ignore-error=yes", "true or false"),
            ("ref=x,colour=red", "unknown option \"colour\""),
            ("ref=x,ref=y", "given twice"),
            ("ref=x,junk", "is not key=value"),
        ] {
            let err = parse_cache_to(text).unwrap_err().to_string();
            assert!(
                err.contains(expected) && err.contains(text),
                "{text}: {err}"
            );
        }
        let err = parse_cache_from("type=local,dest=/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("src= is required"), "{err}");
    }
}
