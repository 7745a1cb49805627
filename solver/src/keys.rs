//! Cache keys: computed for every vertex before anything runs, from the
//! op's definition and its inputs' keys. A copy from the build context keys
//! on the checksum of exactly the files it selects instead of on the
//! context as a whole, so an edit to a file no COPY selects is a cache hit.

use std::collections::HashMap;

use rbuild_frontend::graph::{BuildGraph, CopyAction, FileAction, MountKind, Op};

/// Version of the key scheme: bump to invalidate every record.
const SCHEME: &str = "rbuild cache key v1";

/// Version of the content-key scheme of copies from stages.
const CONTENT_SCHEME: &str = "rbuild content key v1";

/// Computes the key of every node, in graph order. `context_checksum`
/// returns the checksum of what the given copies select in the context, as
/// it reaches the layer (a RUN's bind mounts of the context count as copies
/// of their sources; an empty list means the whole context). `remotes` holds the checksum of each fetched
/// remote source by (node, action) index.
pub fn compute<E>(
    graph: &BuildGraph,
    remotes: &HashMap<(usize, usize), String>,
    mut context_checksum: impl FnMut(&[&CopyAction]) -> Result<String, E>,
) -> Result<Vec<String>, (usize, E)> {
    let mut keys: Vec<String> = Vec::with_capacity(graph.nodes.len());
    for (i, node) in graph.nodes.iter().enumerate() {
        let mut h = blake3::Hasher::new();
        field(&mut h, SCHEME.as_bytes());
        let definition = serde_json::to_vec(&node.op).expect("ops serialize");
        field(&mut h, &definition);
        if let Op::File(f) = &node.op {
            for a in 0..f.actions.len() {
                if let Some(sum) = remotes.get(&(i, a)) {
                    field(&mut h, sum.as_bytes());
                }
            }
        }
        for (pos, input) in node.inputs.iter().enumerate() {
            match &graph.nodes[input.0].op {
                Op::Context(_) => {
                    // Only the files this node selects (or mounts) count.
                    let mounted = bound_sources(&node.op, pos);
                    let copies: Vec<&CopyAction> = match &node.op {
                        Op::File(f) => f
                            .actions
                            .iter()
                            .filter_map(|a| match a {
                                FileAction::Copy(c) if c.source_input == pos => Some(c),
                                _ => None,
                            })
                            .collect(),
                        _ => mounted.iter().collect(),
                    };
                    let sum = context_checksum(&copies).map_err(|e| (i, e))?;
                    field(&mut h, sum.as_bytes());
                }
                _ => field(&mut h, keys[input.0].as_bytes()),
            }
        }
        keys.push(h.finalize().to_hex().to_string());
    }
    Ok(keys)
}

/// What the bind mounts of an exec read from its input `pos`, as copies
/// of their sources (a bind of the context keys on what it shows: the
/// `source` subtree, `.dockerignore` applied, as a COPY of it would).
fn bound_sources(op: &Op, pos: usize) -> Vec<CopyAction> {
    let Op::Exec(exec) = op else {
        return Vec::new();
    };
    exec.mounts
        .iter()
        .filter_map(|m| match &m.kind {
            MountKind::Bind { input, source, .. } if *input == pos => Some(CopyAction {
                source_input: pos,
                sources: vec![source.clone()],
                dest: String::from("/"),
                chown: None,
                chmod: None,
                exclude: Vec::new(),
                parents: false,
                link: false,
                extract_archives: false,
                remote: None,
            }),
            _ => None,
        })
        .collect()
}

/// The content key of a copy from earlier stages: the op's definition, its
/// base state's key, and the checksum of what it selects in each source
/// stage, in input order (see the scheduler's `content_key`).
pub fn content_key(op: &Op, base: &str, source_sums: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    field(&mut h, CONTENT_SCHEME.as_bytes());
    field(&mut h, &serde_json::to_vec(op).expect("ops serialize"));
    field(&mut h, base.as_bytes());
    for sum in source_sums {
        field(&mut h, sum.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Hashes a length-prefixed field, so that field boundaries are unambiguous.
fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}
