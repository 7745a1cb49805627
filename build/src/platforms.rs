//! Multi-platform builds: the op graphs lowered for each target platform
//! merged into one graph with one target per platform, so that the
//! platforms solve at once and every vertex they share (the same key: a
//! context transfer, a `FROM --platform=$BUILDPLATFORM` stage) runs once;
//! the check, before anything runs, that every RUN's platform can run
//! here; and where `--annotation`s go in an index and its manifests.

use std::collections::BTreeMap;

use rbuild_frontend::graph::{BuildGraph, NodeId, Op};
use rbuild_image::Platform;
use rbuild_solver::Target;

use crate::BuildError;

/// The graphs of several platforms as one.
pub(crate) struct Merged {
    /// Every platform's nodes, in platform order, each naming its
    /// platform. Its target, config and history are the first platform's
    /// (the solve reads only the nodes; each image's are in `targets`).
    pub graph: BuildGraph,
    /// Each platform's target, in the order of the graphs given.
    pub targets: Vec<Target>,
}

/// Merges `graphs` (one per platform, each lowered for it; at least one).
pub(crate) fn merge(graphs: &[(Platform, BuildGraph)]) -> Merged {
    let mut nodes = Vec::new();
    let mut targets = Vec::with_capacity(graphs.len());
    for (platform, graph) in graphs {
        let offset = nodes.len();
        let moved = |id: &NodeId| NodeId(id.0 + offset);
        let target_platform = platform.to_string();
        for node in &graph.nodes {
            let mut node = node.clone();
            node.inputs = node.inputs.iter().map(moved).collect();
            let own = node.platform.get_or_insert_with(|| target_platform.clone());
            node.name = labelled(&node.name, own);
            nodes.push(node);
        }
        targets.push(Target {
            node: moved(&graph.target),
            layer_nodes: graph.layer_nodes.iter().map(moved).collect(),
        });
    }
    Merged {
        graph: BuildGraph {
            nodes,
            target: targets[0].node,
            ..graphs[0].1.clone()
        },
        targets,
    }
}

/// Checks, before anything runs, that every RUN of `graphs` (each lowered
/// for its platform) can run here: natively or through qemu-user (see
/// [`rbuild_executor::check_emulation`]).
pub(crate) fn check_emulation(graphs: &[(Platform, BuildGraph)]) -> Result<(), BuildError> {
    let host = Platform::host();
    let mut checked: Vec<String> = Vec::new();
    for (target, graph) in graphs {
        for node in &graph.nodes {
            if !matches!(node.op, Op::Exec(_)) {
                continue;
            }
            let arch = match &node.platform {
                Some(p) => Platform::parse(p).map_or_else(|_| p.clone(), |p| p.architecture),
                None => target.architecture.clone(),
            };
            if !checked.contains(&arch) {
                rbuild_executor::check_emulation(&host.architecture, &arch)?;
                checked.push(arch);
            }
        }
    }
    Ok(())
}

/// `--annotation` values by where buildx places them: `index:key` on the
/// index, `manifest:key` (or a bare `key`) on every manifest,
/// `manifest-descriptor:key` on every manifest's entry in the index, and
/// `manifest[os/arch]:key` / `manifest-descriptor[os/arch]:key` on that
/// platform's only.
#[derive(Debug, Default)]
pub(crate) struct Annotations {
    /// On the index of a multi-platform image.
    pub index: BTreeMap<String, String>,
    /// Per manifest: where, the platform (`None`: all), key, value.
    per_manifest: Vec<(Placement, Option<Platform>, String, String)>,
}

/// Where a per-manifest annotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// In the manifest.
    Manifest,
    /// On the manifest's descriptor in the index.
    Descriptor,
}

impl Annotations {
    /// Sorts the request's annotations by their prefix; `index-descriptor`
    /// (an OCI layout's own index.json) is refused, as unsupported.
    pub fn split(given: &BTreeMap<String, String>) -> Result<Self, BuildError> {
        let mut out = Self::default();
        for (key, value) in given {
            let (scope, bare) = key.split_once(':').unwrap_or(("manifest", key));
            let (kind, only) = match scope.split_once('[') {
                Some((kind, rest)) => {
                    let p = rest.strip_suffix(']').and_then(|p| Platform::parse(p).ok());
                    (kind, p.map(Some))
                }
                None => (scope, Some(None)),
            };
            let placement = match kind {
                "index" if only == Some(None) => {
                    out.index.insert(bare.to_string(), value.clone());
                    continue;
                }
                "index-descriptor" => {
                    return Err(BuildError::Annotation(format!(
                        "{key}: index-descriptor annotations are not supported (use index: or manifest:)"
                    )));
                }
                "manifest" => Placement::Manifest,
                "manifest-descriptor" => Placement::Descriptor,
                // A key with a colon of its own.
                _ => {
                    out.per_manifest
                        .push((Placement::Manifest, None, key.clone(), value.clone()));
                    continue;
                }
            };
            let Some(only) = only else {
                return Err(BuildError::Annotation(format!(
                    "{key}: the platform in brackets is not one (manifest[linux/arm64]:KEY)"
                )));
            };
            out.per_manifest
                .push((placement, only, bare.to_string(), value.clone()));
        }
        Ok(out)
    }

    /// The annotations of `platform`'s manifest.
    pub fn manifest(&self, platform: &Platform) -> BTreeMap<String, String> {
        self.of(Placement::Manifest, platform)
    }

    /// The annotations of `platform`'s entry in the index.
    pub fn descriptor(&self, platform: &Platform) -> BTreeMap<String, String> {
        self.of(Placement::Descriptor, platform)
    }

    fn of(&self, placement: Placement, platform: &Platform) -> BTreeMap<String, String> {
        (self.per_manifest.iter())
            .filter(|(at, only, _, _)| {
                *at == placement && only.as_ref().is_none_or(|p| p == platform)
            })
            .map(|(_, _, k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A step's progress name with its platform, as BuildKit shows it:
/// `[build 2/5] RUN make` → `[linux/arm64 build 2/5] RUN make`
/// (`[internal] …` steps keep their name).
fn labelled(name: &str, platform: &str) -> String {
    match name.strip_prefix('[') {
        Some(rest) if !name.starts_with("[internal]") => format!("[{platform} {rest}"),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbuild_frontend::{BuildOptions, Dockerfile};
    use std::collections::BTreeMap;

    const DOCKERFILE: &str = "FROM --platform=$BUILDPLATFORM scratch AS build\nARG TARGETARCH\nCOPY a /a\nFROM scratch\nARG TARGETARCH\nCOPY --from=build /a /$TARGETARCH\n";

    fn lowered(target: &str) -> (Platform, BuildGraph) {
        let opts = BuildOptions {
            platform: target.to_string(),
            build_platform: String::from("linux/amd64"),
            ..BuildOptions::default()
        };
        let graph = Dockerfile::parse("Dockerfile", DOCKERFILE.as_bytes())
            .and_then(|df| df.lower(&opts, &BTreeMap::new()))
            .unwrap();
        (Platform::parse(target).unwrap(), graph)
    }

    #[test]
    fn annotations_go_where_buildx_puts_them() {
        let given = BTreeMap::from(
            [
                ("index:org.opencontainers.image.title", "t"),
                ("manifest:a", "1"),
                ("b", "2"),
                ("manifest[linux/arm64]:c", "3"),
                ("urn:x", "4"),
                ("manifest-descriptor:d", "5"),
                ("manifest-descriptor[linux/arm64]:e", "6"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let a = Annotations::split(&given).unwrap();
        assert_eq!(
            a.index,
            BTreeMap::from([(
                "org.opencontainers.image.title".to_string(),
                "t".to_string()
            )])
        );
        let keys = |p: &str| -> Vec<String> {
            a.manifest(&Platform::parse(p).unwrap())
                .into_keys()
                .collect()
        };
        assert_eq!(keys("linux/amd64"), ["a", "b", "urn:x"]);
        assert_eq!(keys("linux/arm64"), ["a", "b", "c", "urn:x"]);
        let entries = |p: &str| -> Vec<String> {
            a.descriptor(&Platform::parse(p).unwrap())
                .into_keys()
                .collect()
        };
        assert_eq!(entries("linux/amd64"), ["d"]);
        assert_eq!(entries("linux/arm64"), ["d", "e"]);
        for refused in ["index-descriptor:k", "manifest[nonsense]:k"] {
            let one = BTreeMap::from([(refused.to_string(), String::new())]);
            assert!(Annotations::split(&one).is_err(), "{refused}");
        }
    }

    #[test]
    fn merged_graphs_keep_each_target_and_name_every_node_platform() {
        let parts = [lowered("linux/amd64"), lowered("linux/arm64")];
        let merged = merge(&parts);
        let n = parts[0].1.nodes.len();
        assert_eq!(merged.graph.nodes.len(), n + parts[1].1.nodes.len());
        assert_eq!(merged.targets[0].node, parts[0].1.target);
        assert_eq!(merged.targets[1].node.0, parts[1].1.target.0 + n);
        for (i, node) in merged.graph.nodes.iter().enumerate() {
            assert!(node.inputs.iter().all(|x| x.0 < i), "inputs come first");
            assert!(node.platform.is_some(), "{} names no platform", node.name);
        }
        let names: Vec<&str> = merged.graph.nodes[n..]
            .iter()
            .map(|x| x.name.as_str())
            .collect();
        assert!(
            names.contains(&"[linux/amd64 build 3/3] COPY a /a"),
            "{names:?}"
        );
        assert!(
            names
                .iter()
                .any(|x| x.starts_with("[linux/arm64 stage-1 3/3] COPY --from=build")),
            "{names:?}"
        );
        // The build-platform stage is the same op for both platforms.
        let build_copy = |part: usize, offset: usize| {
            merged.graph.nodes[offset..]
                .iter()
                .take(parts[part].1.nodes.len())
                .find(|x| x.name.contains("COPY a /a"))
                .map(|x| (x.op.clone(), x.platform.clone()))
                .unwrap()
        };
        assert_eq!(build_copy(0, 0), build_copy(1, n));
    }
}
