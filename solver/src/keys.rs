//! Cache keys: computed for every vertex before anything runs. A vertex's
//! ingredients ([`KeyIngredients`]: the platform, the digest of its op's
//! definition in the key encoding of `keyenc`, what each input contributes,
//! remote checksums, the stage's base image) are gathered first and the key
//! is hashed from them alone, so the record that keeps them says exactly
//! what a key was made of. A copy from the build context keys on the
//! checksum of exactly the files it selects instead of on the context as a
//! whole, so an edit to a file no COPY selects is a cache hit. Nothing of
//! the machine goes in: no store path, snapshot id or host id.

use std::collections::HashMap;

use rbuild_cache::{CacheKey, KeyIngredients, KeyInput, StepVar, VarOrigin};
use rbuild_frontend::graph::{
    self, BuildGraph, CopyAction, FileAction, FileOp, MountKind, Node, Op,
};

use crate::keyenc;

/// Computes the key of every node, in graph order, for `platform`
/// (`os/arch[/variant]`). `context_checksum` returns the checksum of what
/// the given copies select in the context, as it reaches the layer (a
/// RUN's bind mounts of the context count as copies of their sources; an
/// empty list means the whole context). `remotes` holds the checksum of
/// each fetched remote source by (node, action) index.
pub fn compute<E>(
    graph: &BuildGraph,
    platform: &str,
    remotes: &HashMap<(usize, usize), String>,
    mut context_checksum: impl FnMut(&[&CopyAction]) -> Result<String, E>,
) -> Result<Keys, (usize, E)> {
    let n = graph.nodes.len();
    let mut keys: Vec<CacheKey> = Vec::with_capacity(n);
    let mut records = Vec::with_capacity(n);
    let mut ingredients = Vec::with_capacity(n);
    let mut base_images: Vec<Option<String>> = Vec::with_capacity(n);
    for (i, node) in graph.nodes.iter().enumerate() {
        let base_image = match &node.op {
            Op::Image(source) => Some(source.digest.clone()),
            Op::Exec(_) | Op::File(_) => base_images[node.inputs[0].0].clone(),
            Op::Scratch | Op::Context(_) => None,
        };
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for (pos, input) in node.inputs.iter().enumerate() {
            inputs.push(match &graph.nodes[input.0].op {
                Op::Context(_) => {
                    let copies = context_copies(&node.op, pos);
                    let copies: Vec<&CopyAction> = copies.iter().collect();
                    KeyInput::Content(context_checksum(&copies).map_err(|e| (i, e))?)
                }
                _ => KeyInput::State(keys[input.0].clone()),
            });
        }
        let remotes = match &node.op {
            Op::File(f) => (0..f.actions.len())
                .filter_map(|a| remotes.get(&(i, a)).cloned())
                .collect(),
            _ => Vec::new(),
        };
        let mine = KeyIngredients {
            inputs,
            vars_digest: node
                .step
                .as_ref()
                .map(|s| s.vars.digest())
                .unwrap_or_default(),
            remotes,
            base_image: base_image.clone(),
            ..KeyIngredients::new(
                node.platform.as_deref().unwrap_or(platform),
                definition_digest(&node.op),
            )
        };
        keys.push(key_of(&mine));
        // A linked copy's layer does not depend on what is below it.
        let recorded = match is_link(&node.op) {
            true => unlinked(mine),
            false => mine,
        };
        records.push(key_of(&recorded));
        ingredients.push(recorded);
        base_images.push(base_image);
    }
    Ok(Keys {
        keys,
        records,
        ingredients,
    })
}

/// The keys of a graph's nodes, in graph order.
pub struct Keys {
    /// What a node's state is identified by (its users' keys hash it).
    pub keys: Vec<CacheKey>,
    /// What a node's result is recorded under: its key, except for a
    /// linked copy, whose record (its own layer) leaves the base out.
    pub records: Vec<CacheKey>,
    /// What each record key is hashed from.
    pub ingredients: Vec<KeyIngredients>,
}

/// The key hashed from `ingredients`: every field, length-prefixed, in the
/// order of the struct, each input tagged with its kind; of the variables,
/// their digest (the list is what a record shows of it).
pub fn key_of(ingredients: &KeyIngredients) -> CacheKey {
    let KeyIngredients {
        version,
        platform,
        definition,
        inputs,
        vars_digest,
        vars: _,
        remotes,
        base_image,
    } = ingredients;
    let mut h = blake3::Hasher::new();
    hash_field(&mut h, format!("rbuild cache key v{version}").as_bytes());
    hash_field(&mut h, platform.as_bytes());
    hash_field(&mut h, definition.as_bytes());
    for input in inputs {
        let (kind, value) = match input {
            KeyInput::State(key) => ("state", key.as_str()),
            KeyInput::Content(sum) => ("content", sum.as_str()),
            KeyInput::StageFiles(sum) => ("stage files", sum.as_str()),
            KeyInput::AnyBase => ("any base", ""),
        };
        hash_field(&mut h, kind.as_bytes());
        hash_field(&mut h, value.as_bytes());
    }
    if !vars_digest.is_empty() {
        hash_field(&mut h, b"vars");
        hash_field(&mut h, vars_digest.as_bytes());
    }
    for sum in remotes {
        hash_field(&mut h, b"remote");
        hash_field(&mut h, sum.as_bytes());
    }
    if let Some(digest) = base_image {
        hash_field(&mut h, b"base image");
        hash_field(&mut h, digest.as_bytes());
    }
    CacheKey::from_hash(&h.finalize())
}

/// `ingredients` (node's key's, or a content key's) with the build args
/// and ENV values node's step uses listed by name (credential-looking
/// values as a digest): what its record keeps and a miss is explained
/// with. Listed only then: a RUN uses every variable set before it, and a
/// list for each of n RUNs would cost n² to make.
pub(crate) fn with_vars(node: &Node, mut ingredients: KeyIngredients) -> KeyIngredients {
    ingredients.vars = step_vars(node);
    ingredients
}

/// The build args and ENV values node's step uses, by name, as records
/// keep them.
fn step_vars(node: &Node) -> Vec<StepVar> {
    let vars = node.step.iter().flat_map(|s| &s.vars);
    vars.map(|v| StepVar {
        name: v.name.clone(),
        origin: match v.origin {
            graph::VarOrigin::Arg => VarOrigin::Arg,
            graph::VarOrigin::Env => VarOrigin::Env,
        },
        value: rbuild_explain::recorded_value(&v.name, &v.value),
    })
    .collect()
}

/// The ingredients of a linked copy's record: its base is any base, and so
/// is the base image below it.
fn unlinked(mut ingredients: KeyIngredients) -> KeyIngredients {
    if let Some(base) = ingredients.inputs.first_mut() {
        *base = KeyInput::AnyBase;
    }
    ingredients.base_image = None;
    ingredients
}

/// blake3 (hex) of the op's definition in the key encoding.
fn definition_digest(op: &Op) -> String {
    blake3::hash(&keyenc::definition(op)).to_hex().to_string()
}

/// What node `op` reads from its context input `pos`: the copies whose
/// source it is, or for an exec the bind mounts of it, as copies of their
/// sources (a bind of the context keys on what it shows: the `source`
/// subtree, `.dockerignore` applied, as a COPY of it would).
fn context_copies(op: &Op, pos: usize) -> Vec<CopyAction> {
    match op {
        Op::File(f) => f
            .actions
            .iter()
            .filter_map(|a| match a {
                FileAction::Copy(c) if c.source_input == pos => Some(c.clone()),
                _ => None,
            })
            .collect(),
        Op::Exec(exec) => exec
            .mounts
            .iter()
            .filter_map(|m| match &m.kind {
                MountKind::Bind { input, source, .. } if *input == pos => {
                    Some(mount_source_copy(pos, source))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The copy a mount's `source` (of input `source_input`) stands for: the
/// subtree copied as it is to `/`, as a plain COPY of it would, which is
/// what a bind mount shows, a cache mount is seeded with, and their keys
/// read.
pub(crate) fn mount_source_copy(source_input: usize, source: &str) -> CopyAction {
    CopyAction {
        source_input,
        sources: vec![source.to_string()],
        dest: String::from("/"),
        chown: None,
        chmod: None,
        exclude: Vec::new(),
        parents: false,
        link: false,
        extract_archives: false,
        remote: None,
    }
}

/// The content key of a copy from earlier stages, with its ingredients:
/// those of its record key, with each source stage's key replaced by the
/// checksum of what the copy selects in it (`source_sums`, in input order;
/// see the scheduler's `content_key`).
pub fn content_key(record: &KeyIngredients, source_sums: &[String]) -> (CacheKey, KeyIngredients) {
    let mut ingredients = record.clone();
    ingredients.inputs.truncate(1);
    ingredients
        .inputs
        .extend(source_sums.iter().cloned().map(KeyInput::StageFiles));
    (key_of(&ingredients), ingredients)
}

/// Whether `op` is a linked copy (`COPY --link` without `--chmod`, as
/// BuildKit links it): its changes are made on an empty tree, become a
/// layer of their own stacked on the base, and neither its key nor its
/// layer depends on the base.
pub fn is_link(op: &Op) -> bool {
    matches!(op, Op::File(f) if is_link_op(f))
}

/// Whether file op `f` is a linked copy (see [`is_link`]).
pub fn is_link_op(f: &FileOp) -> bool {
    f.actions
        .iter()
        .any(|a| matches!(a, FileAction::Copy(c) if c.link && c.chmod.is_none()))
}

/// Hashes a length-prefixed field, so that field boundaries are unambiguous.
fn hash_field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// Golden keys: each pins the key of a small graph, computed without root
/// or store, so that a change of the encoding, of the ingredients or of
/// the hashing fails here before it silently invalidates every cache.
/// A deliberate change bumps [`rbuild_cache::INGREDIENTS_VERSION`] and these
/// values.
#[cfg(test)]
mod tests {
    use rbuild_frontend::config::ImageConfig;
    use rbuild_frontend::graph::{
        ContextSource, ExecOp, FileOp, ImageSource, NetworkMode, Node, NodeId, Security,
    };

    use super::*;

    const PLATFORM: &str = "linux/amd64";
    const BUSYBOX: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const ALPINE: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn node(op: Op, inputs: &[usize]) -> Node {
        Node {
            op,
            inputs: inputs.iter().map(|&i| NodeId(i)).collect(),
            name: String::new(),
            location: None,
            step: None,
            platform: None,
        }
    }

    fn graph(nodes: Vec<Node>) -> BuildGraph {
        BuildGraph {
            target: NodeId(nodes.len() - 1),
            nodes,
            config: ImageConfig::default(),
            history: Vec::new(),
            layer_nodes: Vec::new(),
            unused_build_args: Vec::new(),
            author: None,
            warnings: Vec::new(),
            base_platform: None,
        }
    }

    fn image(name: &str, digest: &str) -> Node {
        node(
            Op::Image(ImageSource {
                reference: format!("docker.io/library/{name}:latest"),
                digest: digest.to_string(),
            }),
            &[],
        )
    }

    fn context() -> Node {
        node(
            Op::Context(ContextSource {
                include_patterns: vec![String::from("a.txt")],
                exclude_patterns: Vec::new(),
            }),
            &[],
        )
    }

    fn copy_a(link: bool) -> Op {
        Op::File(FileOp {
            actions: vec![FileAction::Copy(CopyAction {
                source_input: 1,
                sources: vec![String::from("a.txt")],
                dest: String::from("/"),
                chown: None,
                chmod: None,
                exclude: Vec::new(),
                parents: false,
                link,
                extract_archives: false,
                remote: None,
            })],
        })
    }

    fn run_echo() -> Op {
        Op::Exec(ExecOp {
            args: ["/bin/sh", "-c", "echo hi > /f"].map(String::from).to_vec(),
            env: vec![String::from("PATH=/usr/bin:/bin")].into(),
            cwd: String::from("/"),
            user: String::new(),
            network: NetworkMode::Default,
            mounts: Vec::new(),
            security: Security::Sandbox,
            extras: Default::default(),
        })
    }

    /// The keys of `g`, with every context selection checksummed as `a-sum`.
    fn keys_of(g: &BuildGraph) -> Keys {
        let none = HashMap::new();
        compute(g, PLATFORM, &none, |_| Ok::<_, ()>(String::from("a-sum"))).unwrap()
    }

    fn hex(keys: &[CacheKey]) -> Vec<&str> {
        keys.iter().map(CacheKey::as_str).collect()
    }

    #[test]
    fn an_image_source_key_is_pinned() {
        let k = keys_of(&graph(vec![image("busybox", BUSYBOX)]));
        assert_eq!(
            hex(&k.keys),
            ["d41d28ebacf7029278d729a9dbe4c832a6a9a1926139cdbcf750e3668b8dea60"]
        );
        assert_eq!(k.ingredients[0].base_image.as_deref(), Some(BUSYBOX));
    }

    #[test]
    fn a_run_key_is_pinned() {
        let k = keys_of(&graph(vec![
            image("busybox", BUSYBOX),
            node(run_echo(), &[0]),
        ]));
        assert_eq!(
            hex(&k.keys),
            [
                "d41d28ebacf7029278d729a9dbe4c832a6a9a1926139cdbcf750e3668b8dea60",
                "e7429831cccc85473bfac0c4adb6a57e41dfe0e25971321db082cd3fd3ae7ad1",
            ]
        );
        assert_eq!(k.records, k.keys, "a RUN is recorded under its key");
        assert_eq!(
            k.ingredients[1].inputs,
            [KeyInput::State(k.keys[0].clone())]
        );
        assert_eq!(k.ingredients[1].base_image.as_deref(), Some(BUSYBOX));
    }

    #[test]
    fn a_copy_from_the_context_keys_on_the_checksum_of_what_it_selects() {
        let g = graph(vec![
            node(Op::Scratch, &[]),
            context(),
            node(copy_a(false), &[0, 1]),
        ]);
        let k = keys_of(&g);
        assert_eq!(
            hex(&k.keys),
            [
                "9f7957c2e3cd10f610de2097bcc0dc2c9bb6c9f67800be12a84477131a88f8d9",
                "e74323cb7b278ce40e9cf236a0f2352282a39fba4856e3ee03fbb5b9fd8cd77c",
                "57e0c63eaf518537f324adbc8ce8f1d64279f6ff47874bd3dfea9b220e96501e",
            ]
        );
        assert_eq!(
            k.ingredients[2].inputs[1],
            KeyInput::Content(String::from("a-sum"))
        );
        let none = HashMap::new();
        let edited = compute(&g, PLATFORM, &none, |_| Ok::<_, ()>(String::from("b-sum")));
        assert_ne!(edited.unwrap().keys[2], k.keys[2], "the content counts");
    }

    #[test]
    fn a_linked_copy_is_recorded_apart_from_its_base() {
        let on = |base: &str, digest: &str| {
            keys_of(&graph(vec![
                image(base, digest),
                context(),
                node(copy_a(true), &[0, 1]),
            ]))
        };
        let (busybox, alpine) = (on("busybox", BUSYBOX), on("alpine", ALPINE));
        assert_eq!(
            [busybox.keys[2].as_str(), busybox.records[2].as_str()],
            [
                "e6b3946f5a93ce7d7cb1e6fc2c4892f85fc57157affbccfd918803b9c43dcb39",
                "d4a7f85d7604d912d4372504f682f41cb2fa71c6c30881ef5f835efb4c75ba31",
            ]
        );
        assert_ne!(
            busybox.keys[2], alpine.keys[2],
            "its state depends on the base"
        );
        assert_eq!(busybox.records[2], alpine.records[2], "its layer does not");
        assert_eq!(busybox.ingredients[2].inputs[0], KeyInput::AnyBase);
        assert_eq!(busybox.ingredients[2].base_image, None);
    }

    #[test]
    fn the_variables_a_step_uses_are_an_ingredient_of_its_own_with_credentials_redacted() {
        use rbuild_frontend::graph::{StepInfo, UsedVar};
        let with = |token: &str| {
            let mut run = node(run_echo(), &[0]);
            let used = |name: &str, value: &str| UsedVar {
                name: name.to_string(),
                origin: graph::VarOrigin::Arg,
                value: value.to_string(),
            };
            run.step = Some(StepInfo {
                stage: String::from("stage-0"),
                ordinal: 2,
                instruction: String::from("RUN echo hi > /f"),
                // By name, as lowering lists them.
                vars: vec![used("NPM_TOKEN", token), used("VERSION", "1.2")].into(),
            });
            graph(vec![image("busybox", BUSYBOX), run])
        };
        let g = with("hunter2");
        let k = keys_of(&g);
        assert_eq!(
            k.keys[1].as_str(),
            "599edf40ae3face37bec379dc7ec4eb91dc1ae5979f6ea777ef99a4dfd31c484"
        );
        let ingredients = &k.ingredients[1];
        assert_eq!(
            ingredients.vars_digest,
            g.nodes[1].step.as_ref().unwrap().vars.digest()
        );
        assert!(ingredients.vars.is_empty(), "a key lists no variables");
        let recorded = with_vars(&g.nodes[1], ingredients.clone());
        assert_eq!(key_of(&recorded), k.keys[1], "the list is not hashed");
        let vars = &recorded.vars;
        assert_eq!(
            (vars[1].name.as_str(), vars[1].value.as_str()),
            ("VERSION", "1.2")
        );
        assert!(vars[0].value.starts_with("redacted:") && !vars[0].value.contains("hunter2"));
        assert_ne!(
            keys_of(&with("hunter3")).keys[1],
            k.keys[1],
            "a new secret value still counts"
        );
    }

    #[test]
    fn a_run_keys_on_the_digest_of_its_environment_not_the_list() {
        let run_with = |env: rbuild_frontend::graph::Env| {
            let Op::Exec(mut exec) = run_echo() else {
                unreachable!("an exec")
            };
            exec.env = env;
            keys_of(&graph(vec![
                image("busybox", BUSYBOX),
                node(Op::Exec(exec), &[0]),
            ]))
            .keys[1]
                .clone()
        };
        let base = rbuild_frontend::graph::Env::default().with("A", "1");
        let key = run_with(base.with("B", "2"));
        assert_eq!(key, run_with(base.with("B", "2")));
        assert_ne!(key, run_with(base.with("B", "3")), "a value counts");
        assert_ne!(key, run_with(base.with("C", "2")), "a name counts");
    }

    #[test]
    fn every_record_key_is_the_hash_of_its_recorded_ingredients() {
        let g = graph(vec![
            image("busybox", BUSYBOX),
            context(),
            node(copy_a(true), &[0, 1]),
            node(run_echo(), &[2]),
        ]);
        let k = keys_of(&g);
        for (record, ingredients) in k.records.iter().zip(&k.ingredients) {
            assert_eq!(&key_of(ingredients), record);
        }
        let mut other_platform = k.ingredients[3].clone();
        other_platform.platform = String::from("linux/arm64");
        assert_ne!(key_of(&other_platform), k.records[3]);
    }

    #[test]
    fn a_node_of_another_platform_is_keyed_with_its_own() {
        let own = |platform: Option<&str>| {
            let mut copy = node(copy_a(false), &[0, 1]);
            copy.platform = platform.map(str::to_string);
            keys_of(&graph(vec![node(Op::Scratch, &[]), context(), copy]))
        };
        let target = own(None);
        assert_eq!(target.ingredients[2].platform, PLATFORM);
        let arm = own(Some("linux/arm64"));
        assert_eq!(arm.ingredients[2].platform, "linux/arm64");
        assert_ne!(arm.keys[2], target.keys[2]);
        assert_eq!(
            own(Some(PLATFORM)).keys[2],
            target.keys[2],
            "the target's own platform is no change"
        );
    }

    #[test]
    fn a_content_key_swaps_stage_keys_for_the_checksums_of_the_copied_files() {
        let k = keys_of(&graph(vec![
            image("busybox", BUSYBOX),
            node(run_echo(), &[0]),
        ]));
        let record = KeyIngredients {
            inputs: vec![
                k.ingredients[1].inputs[0].clone(),
                KeyInput::State(k.keys[1].clone()),
            ],
            ..k.ingredients[1].clone()
        };
        let (key, ingredients) = content_key(&record, &[String::from("files")]);
        assert_eq!(
            ingredients.inputs[1],
            KeyInput::StageFiles(String::from("files"))
        );
        assert_eq!(key, key_of(&ingredients));
        assert_ne!(key, key_of(&record));
    }
}
