//! `rbuild debug`: the parser's view of a Dockerfile, and a store check.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use rbuild_cache::Store;

/// `rbuild debug` subcommands.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Parse a Dockerfile and print BuildKit's AST dump (`--dump`) or the
    /// instructions with their lines.
    Parse(ParseArgs),
    /// Verify every blob's digest, every snapshot against its listing,
    /// every record, and that every tagged image is complete; `--repair`
    /// removes what is broken and says what it removed.
    Fsck(FsckArgs),
}

/// `rbuild debug parse` arguments.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Print BuildKit's AST dump format.
    #[arg(long)]
    dump: bool,

    /// The Dockerfile.
    file: PathBuf,
}

/// `rbuild debug fsck` arguments.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Remove corrupt blobs, broken snapshots, the records that name them,
    /// and the names of incomplete images.
    #[arg(long)]
    repair: bool,
}

/// Runs a debug subcommand.
pub fn run(root: &Path, command: DebugCommand) -> anyhow::Result<ExitCode> {
    match command {
        DebugCommand::Parse(args) => {
            let name = args.file.display().to_string();
            let source = rbuild_frontend::input::read_input(&args.file)?
                .with_context(|| format!("{name} not found"))?;
            if args.dump {
                out!("{}", rbuild_frontend::dump_ast(&name, &source)?)?;
            } else {
                let df = rbuild_frontend::Dockerfile::parse(&name, &source)?;
                for i in df.instructions() {
                    outln!("{}:{}-{} {}", name, i.line, i.end_line, i.original)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DebugCommand::Fsck(args) => {
            let store = Store::open(root)?;
            let report = store.fsck(args.repair)?;
            for p in &report.problems {
                outln!("{p}")?;
            }
            for r in &report.removed {
                outln!("removed {r}")?;
            }
            outln!(
                "{} blobs, {} snapshots, {} images checked, {} problems{}",
                report.blobs_checked,
                report.snapshots_checked,
                report.images_checked,
                report.problems.len(),
                if args.repair && !report.problems.is_empty() {
                    " (repaired)"
                } else {
                    ""
                }
            )?;
            Ok(if report.problems.is_empty() || args.repair {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
