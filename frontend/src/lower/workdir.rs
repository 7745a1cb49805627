//! WORKDIR: sets the working directory and creates it (owned by the
//! current USER) in a file op, which adds a layer.

use crate::FrontendError;
use crate::ast::Instruction;
use crate::graph::{FileAction, FileOp, Op};

use super::{Lowerer, StageState, absolute, clean_path};

impl Lowerer<'_> {
    /// `WORKDIR`.
    pub(super) fn workdir(
        &mut self,
        state: &mut StageState,
        ins: &Instruction,
        path: &str,
        step: &str,
    ) -> Result<(), FrontendError> {
        let path = self.expand(state, ins, path)?;
        let path = clean_path(&absolute(state, &path));
        state.config.working_dir = path.clone();
        let chown = (!state.config.user.is_empty()).then(|| state.config.user.clone());
        let node = self.add(
            Op::File(FileOp {
                actions: vec![FileAction::Mkdir {
                    path: path.clone(),
                    mode: 0o755,
                    chown,
                }],
            }),
            vec![state.node],
            format!("{step} WORKDIR {path}"),
            Some(ins),
        );
        state.node = node;
        state.layer_nodes.push(node);
        Self::history(state, format!("WORKDIR {path}"), false);
        Ok(())
    }
}
