//! COPY and ADD: sources from the context, a stage or an image (`--from`),
//! heredocs as new files, and for ADD remote URLs and git repositories,
//! lowered into one file op on the stage's state.

use crate::FrontendError;
use crate::ast::Instruction;
use crate::chmod::Chmod;
use crate::expand;
use crate::graph::{CopyAction, FileAction, FileOp, NodeId, Op, RemoteSource};
use crate::instructions::CopyCommand;
use crate::lines::Heredoc;

use super::{Lowerer, StageState, after_keyword, clean_path};

/// An ADD source that is a URL or a git repository.
fn remote_source(src: &str, copy: &CopyCommand) -> Option<RemoteSource> {
    let git = src.starts_with("git@")
        || src.starts_with("git://")
        || ((src.starts_with("https://")
            || src.starts_with("http://")
            || src.starts_with("ssh://"))
            && (src.contains(".git#")
                || src.split('#').next().is_some_and(|u| u.ends_with(".git"))));
    if git {
        return Some(RemoteSource::Git {
            url: src.to_string(),
            keep_git_dir: copy.keep_git_dir,
            checksum: copy.checksum.clone(),
        });
    }
    if src.starts_with("http://") || src.starts_with("https://") {
        return Some(RemoteSource::Http {
            url: src.to_string(),
            checksum: copy.checksum.clone(),
        });
    }
    None
}

/// The heredoc a `<<NAME` source refers to.
fn heredoc<'i>(ins: &'i Instruction, source: &str) -> Option<&'i Heredoc> {
    let name = source.strip_prefix("<<")?;
    let name = name.trim_start_matches('-').trim_matches(['"', '\'']);
    ins.heredocs.iter().find(|h| h.name == name)
}

impl Lowerer<'_> {
    /// The absolute destination, WORKDIR applied; a trailing `/` (or `.`)
    /// keeps meaning "into this directory".
    fn destination(
        &self,
        state: &StageState,
        ins: &Instruction,
        dest: &str,
    ) -> Result<String, FrontendError> {
        let raw = self.expand(state, ins, dest)?;
        if raw.starts_with('/') {
            return Ok(raw);
        }
        let wd = if state.config.working_dir.is_empty() {
            "/"
        } else {
            state.config.working_dir.as_str()
        };
        let mut c = clean_path(&format!("{}/{}", wd.trim_end_matches('/'), raw));
        if raw.ends_with('/') || raw == "." || raw.ends_with("/.") {
            c = format!("{}/", c.trim_end_matches('/'));
        }
        Ok(c)
    }

    /// `COPY` and `ADD`.
    pub(super) fn copy(
        &mut self,
        stage: usize,
        state: &mut StageState,
        ins: &Instruction,
        copy: CopyCommand,
        step: &str,
    ) -> Result<(), FrontendError> {
        let dest = self.destination(state, ins, &copy.dest)?;
        let chown = copy
            .chown
            .as_deref()
            .map(|c| self.expand(state, ins, c))
            .transpose()?;
        let chmod = match &copy.chmod {
            Some(written) => {
                let expanded = self.expand(state, ins, written)?;
                let parsed = Chmod::parse(&expanded).map_err(|e| self.err(ins, e))?;
                Some((expanded, parsed))
            }
            None => None,
        };
        let source_node = match &copy.from {
            Some(f) => {
                let f = self.expand(state, ins, f)?;
                self.named_source(stage, &f, ins)?
            }
            None => self.context,
        };
        let action = |sources: Vec<String>, remote: Option<RemoteSource>| {
            let (parents, extract_archives) = match &remote {
                // A remote archive is unpacked only when asked for.
                Some(_) => (false, copy.unpack == Some(true)),
                None => (copy.parents, copy.add && copy.unpack != Some(false)),
            };
            FileAction::Copy(CopyAction {
                source_input: 1,
                sources,
                dest: dest.clone(),
                chown: chown.clone(),
                chmod: chmod.as_ref().map(|(expanded, _)| expanded.clone()),
                exclude: copy.exclude.clone(),
                parents,
                link: copy.link,
                extract_archives,
                remote,
            })
        };
        let mut actions = Vec::new();
        let mut local = Vec::new();
        for s in &copy.sources {
            if let Some(h) = heredoc(ins, s) {
                let mode = chmod.as_ref().map_or(0o644, |(_, c)| c.apply(0o644, false));
                actions.push(self.heredoc_file(state, ins, h, &dest, mode, chown.clone())?);
                continue;
            }
            let s = self.expand(state, ins, s)?;
            if let Some(r) = remote_source(&s, &copy).filter(|_| copy.add) {
                actions.push(action(Vec::new(), Some(r)));
                continue;
            }
            if copy.add && copy.checksum.is_some() {
                return Err(self.err(ins, "ADD --checksum is only supported for HTTP(S) sources"));
            }
            local.push(s);
        }
        if !local.is_empty() {
            if source_node == self.context {
                self.includes.extend(local.iter().cloned());
            }
            actions.push(action(local, None));
        }
        self.add_copy_step(state, ins, actions, source_node, copy.add, step);
        Ok(())
    }

    /// The file op of a COPY/ADD as the stage's new state and layer.
    fn add_copy_step(
        &mut self,
        state: &mut StageState,
        ins: &Instruction,
        actions: Vec<FileAction>,
        source_node: NodeId,
        add: bool,
        step: &str,
    ) {
        let keyword = if add { "ADD" } else { "COPY" };
        let shown = after_keyword(ins).to_string();
        // Heredocs alone read no source: the step's key is its own content.
        let reads_source = actions.iter().any(|a| matches!(a, FileAction::Copy(_)));
        let inputs = if reads_source {
            vec![state.node, source_node]
        } else {
            vec![state.node]
        };
        let node = self.add(
            Op::File(FileOp { actions }),
            inputs,
            format!("{step} {keyword} {shown}"),
            Some(ins),
        );
        state.node = node;
        state.layer_nodes.push(node);
        Self::history(state, format!("{keyword} {shown} # buildkit"), false);
    }

    /// The file a heredoc source becomes: at the destination (or named
    /// after the heredoc inside a destination directory), with `mode`
    /// (BuildKit's 0644 with `--chmod` applied).
    fn heredoc_file(
        &self,
        state: &StageState,
        ins: &Instruction,
        h: &Heredoc,
        dest: &str,
        mode: u32,
        chown: Option<String>,
    ) -> Result<FileAction, FrontendError> {
        let data = if h.expand {
            self.expand_heredoc(state, ins, &h.content)?
        } else {
            h.content.clone()
        };
        let path = if dest.ends_with('/') {
            format!("{dest}{}", h.name)
        } else {
            dest.to_string()
        };
        Ok(FileAction::Mkfile {
            path,
            data: data.into_bytes(),
            mode,
            chown,
        })
    }

    /// An unquoted heredoc's body, expanded as BuildKit does.
    fn expand_heredoc(
        &self,
        state: &StageState,
        ins: &Instruction,
        body: &str,
    ) -> Result<String, FrontendError> {
        // Line by line, so each line has the bound of one expansion.
        let mut out = String::new();
        for line in body.split_inclusive('\n') {
            out.push_str(
                &expand::expand_heredoc(line, &|k| Self::lookup(state, k))
                    .and_then(|line| self.df.expanded.spend(line.len()).map(|()| line))
                    .map_err(|e| self.err(ins, e))?,
            );
        }
        Ok(out)
    }
}
