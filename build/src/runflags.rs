//! What the build's flags change in the op graph before it is solved, as
//! BuildKit's Dockerfile frontend applies them to every exec op: the
//! network of each RUN without `--network` (`--network`), the sandbox
//! extras (`--add-host`, `--ulimit`, `--shm-size`; part of the steps'
//! keys), and which steps run whatever the cache holds
//! (`--no-cache-filter`).

use std::collections::BTreeSet;

use rbuild_frontend::graph::{BuildGraph, NetworkMode, Op, SandboxExtras};

use crate::error::BuildError;

/// `build --network`: what RUNs without `--network` get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuildNetwork {
    /// Their own network namespace with outbound access.
    #[default]
    Default,
    /// The host's network (buildx grants `network.host` for it).
    Host,
    /// Only a loopback interface.
    None,
}

impl BuildNetwork {
    /// The mode `--network NAME` names (`default`, `host`, `none`;
    /// `bridge` is the default one, as buildx takes it).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "default" | "bridge" => Some(BuildNetwork::Default),
            "host" => Some(BuildNetwork::Host),
            "none" => Some(BuildNetwork::None),
            _ => None,
        }
    }
}

/// Gives every RUN that asks for no network the build's, and every RUN
/// the build's sandbox extras.
pub fn apply(graph: &mut BuildGraph, network: BuildNetwork, extras: &SandboxExtras) {
    for node in &mut graph.nodes {
        if let Op::Exec(exec) = &mut node.op {
            if exec.network == NetworkMode::Default {
                exec.network = match network {
                    BuildNetwork::Default => NetworkMode::Default,
                    BuildNetwork::Host => NetworkMode::Host,
                    BuildNetwork::None => NetworkMode::None,
                };
            }
            exec.extras = extras.clone();
        }
    }
}

/// The nodes `--no-cache-filter STAGE…` runs afresh: the steps of those
/// stages and every node that depends on one (its key is made from
/// theirs, so a stale hit below a fresh step is never used). A stage no
/// step names is an error, as BuildKit's.
pub fn no_cache_nodes(
    graph: &BuildGraph,
    stages: &[String],
) -> Result<BTreeSet<usize>, BuildError> {
    let mut out = BTreeSet::new();
    if stages.is_empty() {
        return Ok(out);
    }
    for stage in stages {
        if !graph.nodes.iter().any(|n| {
            n.step
                .as_ref()
                .is_some_and(|s| s.stage.eq_ignore_ascii_case(stage))
        }) {
            return Err(BuildError::NoSuchStage(stage.clone()));
        }
    }
    // A node's inputs have smaller indices: one pass in order.
    for (i, node) in graph.nodes.iter().enumerate() {
        let in_stage = node
            .step
            .as_ref()
            .is_some_and(|s| stages.iter().any(|st| st.eq_ignore_ascii_case(&s.stage)));
        if in_stage || node.inputs.iter().any(|input| out.contains(&input.0)) {
            out.insert(i);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbuild_frontend::{BuildOptions, Dockerfile};
    use std::collections::BTreeMap;

    fn graph(dockerfile: &str) -> BuildGraph {
        Dockerfile::parse("Dockerfile", dockerfile.as_bytes())
            .and_then(|df| df.lower(&BuildOptions::default(), &BTreeMap::new()))
            .unwrap()
    }

    fn exec_networks(g: &BuildGraph) -> Vec<NetworkMode> {
        g.nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Exec(e) => Some(e.network),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_build_network_fills_only_runs_without_one() {
        let mut g = graph("FROM scratch\nRUN a\nRUN --network=none b\n");
        let extras = SandboxExtras {
            shm_size: Some(1 << 20),
            ..SandboxExtras::default()
        };
        apply(&mut g, BuildNetwork::Host, &extras);
        assert_eq!(exec_networks(&g), [NetworkMode::Host, NetworkMode::None]);
        assert!(g.nodes.iter().all(|n| match &n.op {
            Op::Exec(e) => e.extras == extras,
            _ => true,
        }));
        assert_eq!(
            BuildNetwork::from_name("bridge"),
            Some(BuildNetwork::Default)
        );
        assert_eq!(BuildNetwork::from_name("overlay"), None);
    }

    #[test]
    fn no_cache_filter_takes_a_stage_and_what_depends_on_it() {
        let g = graph(
            "FROM scratch AS a\nRUN one\nFROM scratch AS b\nRUN two\nFROM b\nCOPY --from=a /x /x\n",
        );
        let nodes = no_cache_nodes(&g, &[String::from("a")]).unwrap();
        let names: Vec<&str> = nodes.iter().map(|i| g.nodes[*i].name.as_str()).collect();
        assert!(names.iter().any(|n| n.contains("RUN one")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("COPY")), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("RUN two")), "{names:?}");
        assert!(no_cache_nodes(&g, &[]).unwrap().is_empty());
        assert!(no_cache_nodes(&g, &[String::from("zz")]).is_err());
    }
}
