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
) -> Result<Keys, (usize, E)> {
    let mut keys: Vec<String> = Vec::with_capacity(graph.nodes.len());
    let mut records: Vec<String> = Vec::with_capacity(graph.nodes.len());
    for (i, node) in graph.nodes.iter().enumerate() {
        let mut h = Fields::default();
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
                // A linked copy's layer does not depend on what is below it.
                _ if pos == 0 && is_link(&node.op) => {
                    h.split(keys[input.0].as_bytes(), LINK_BASE.as_bytes())
                }
                _ => field(&mut h, keys[input.0].as_bytes()),
            }
        }
        let (key, record) = h.finish();
        keys.push(key);
        records.push(record);
    }
    Ok(Keys { keys, records })
}

/// The keys of a graph's nodes, in graph order.
pub struct Keys {
    /// What a node's state is identified by (its users' keys hash it).
    pub keys: Vec<String>,
    /// What a node's result is recorded under: its key, except for a
    /// linked copy, whose record (its own layer) leaves the base out.
    pub records: Vec<String>,
}

/// A key and a record key hashed from the same fields but one.
#[derive(Default)]
struct Fields {
    key: blake3::Hasher,
    record: blake3::Hasher,
}

impl Fields {
    /// A field that differs: `key` in the key, `record` in the record key.
    fn split(&mut self, key: &[u8], record: &[u8]) {
        hash_field(&mut self.key, key);
        hash_field(&mut self.record, record);
    }

    fn finish(self) -> (String, String) {
        (
            self.key.finalize().to_hex().to_string(),
            self.record.finalize().to_hex().to_string(),
        )
    }
}

/// Hashes a length-prefixed field into both keys.
fn field(h: &mut Fields, bytes: &[u8]) {
    hash_field(&mut h.key, bytes);
    hash_field(&mut h.record, bytes);
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
    hash_field(&mut h, CONTENT_SCHEME.as_bytes());
    hash_field(&mut h, &serde_json::to_vec(op).expect("ops serialize"));
    let base = if is_link(op) { LINK_BASE } else { base };
    hash_field(&mut h, base.as_bytes());
    for sum in source_sums {
        hash_field(&mut h, sum.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// What stands for the base state in the keys of a linked copy.
const LINK_BASE: &str = "COPY --link: any base";

/// Whether `op` is a linked copy (`COPY --link` without `--chmod`, as
/// BuildKit links it): its changes are made on an empty tree, become a
/// layer of their own stacked on the base, and neither its key nor its
/// layer depends on the base.
pub fn is_link(op: &Op) -> bool {
    let Op::File(f) = op else {
        return false;
    };
    f.actions
        .iter()
        .any(|a| matches!(a, FileAction::Copy(c) if c.link && c.chmod.is_none()))
}

/// Hashes a length-prefixed field, so that field boundaries are unambiguous.
fn hash_field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}
