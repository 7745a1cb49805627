//! Image configs: the whole config document ([`ConfigFile`], the shape of
//! OCI's `ImageConfiguration`) and its `config` object ([`ImageConfig`],
//! with Docker's extensions: `Healthcheck`, `OnBuild`, `Shell`), plus the
//! history entries.
//!
//! These are our own types rather than oci-spec's `ImageConfiguration`
//! because oci-spec's `Config` has no place for Docker's extensions (a
//! read-then-written config would lose them) and its `History` writes
//! `"empty_layer": false`, which BuildKit leaves out: either would change
//! image digests. Fields are omitted when empty exactly as BuildKit does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An image config document (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    /// `amd64`, `arm64`, …
    #[serde(default)]
    pub architecture: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// `v8`, … (written only when there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// When the image was made, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `MAINTAINER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// What a container of the image runs with.
    #[serde(default)]
    pub config: ImageConfig,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
    /// One entry per step, layer or not.
    #[serde(default)]
    pub history: Vec<History>,
    /// The inline build cache (`--cache-to type=inline`), as BuildKit
    /// keeps `moby.buildkit.cache.v0` in the config; its format belongs to
    /// rbuild-remote-cache, so it is opaque here.
    #[serde(
        rename = "rbuild.cache.v1",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub inline_cache: Option<serde_json::Value>,
}

/// The `rootfs` of a config: `type` is always `layers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The uncompressed digest of each layer, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        Self {
            kind: String::from("layers"),
            diff_ids: Vec::new(),
        }
    }
}

/// The `config` object of an image config. Field names are Docker's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `USER`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `EXPOSE`: keys like `80/tcp`, values empty objects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, EmptyObject>,
    /// `ENV`, as `KEY=value` in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, EmptyObject>,
    /// `WORKDIR`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// `LABEL`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// `HEALTHCHECK` (Docker extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `SHELL` (Docker extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// `ONBUILD` triggers (Docker extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
}

/// The `{}` value Docker uses in port and volume sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

/// `HEALTHCHECK` settings; durations in nanoseconds as Docker writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", "…"]`.
    pub test: Vec<String>,
    /// `--interval`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// `--timeout`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// `--start-period`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// `--start-interval`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    /// `--retries`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One entry of an image's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339 time; the solver fills it in (SOURCE_DATE_EPOCH aware).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// What made it, BuildKit style (`RUN /bin/sh -c make # buildkit`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// Comment (`buildkit.dockerfile.v0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// True when the step added no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::to_canonical_json;

    /// A config as rbuild writes it (keys sorted, BuildKit's omissions).
    const WRITTEN: &str = r#"{"architecture":"amd64","author":"me","config":{"Cmd":["sh"],"Env":["PATH=/bin"],"ExposedPorts":{"80/tcp":{}},"Healthcheck":{"Interval":5000000000,"Test":["CMD","true"]},"OnBuild":["RUN x"],"Shell":["/bin/bash","-c"],"StopSignal":"SIGINT","User":"1000","WorkingDir":"/app"},"created":"2023-11-14T22:13:20Z","history":[{"comment":"buildkit.dockerfile.v0","created":"2023-11-14T22:13:20Z","created_by":"RUN make # buildkit"},{"created_by":"ENV A=1","empty_layer":true}],"os":"linux","rootfs":{"diff_ids":["sha256:aa"],"type":"layers"}}"#;

    #[test]
    fn a_written_config_round_trips_byte_for_byte() {
        let parsed: ConfigFile = serde_json::from_str(WRITTEN).unwrap();
        assert_eq!(
            parsed.config.on_build.as_deref(),
            Some(&[String::from("RUN x")][..])
        );
        assert!(!parsed.history[0].empty_layer);
        assert_eq!(
            String::from_utf8(to_canonical_json(&parsed)).unwrap(),
            WRITTEN
        );
    }

    #[test]
    fn an_empty_config_object_is_written_as_an_empty_object() {
        let file = ConfigFile {
            architecture: String::from("amd64"),
            os: String::from("linux"),
            created: Some(String::from("1970-01-01T00:00:00Z")),
            ..ConfigFile::default()
        };
        assert_eq!(
            String::from_utf8(to_canonical_json(&file)).unwrap(),
            r#"{"architecture":"amd64","config":{},"created":"1970-01-01T00:00:00Z","history":[],"os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}"#
        );
    }
}
