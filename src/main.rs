//! The `rbuild` command line: a daemonless, BuildKit-style Dockerfile build
//! engine. This crate only wires the parts together: clap arguments become
//! validated options, then library calls.

#[macro_use]
mod stdout;
mod cmd;
mod compression;
mod excerpt;
mod heap;
mod progress;
mod rawjson;
mod root;
mod show;
mod signals;
mod summary;
mod template;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Build OCI images from Dockerfiles, cached and reproducible, and run them.
#[derive(Debug, Parser)]
#[command(name = "rbuild", version, about)]
struct Cli {
    /// Store location (default: $RBUILD_ROOT, else /var/lib/rbuild as root,
    /// else $XDG_DATA_HOME/rbuild).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile (`rbuild PATH` is the same).
    Build(cmd::build::BuildArgs),
    /// Run a command in a new sandbox made from an image.
    Run(cmd::run::RunArgs),
    /// List the images in the store.
    Images(cmd::images::ImagesArgs),
    /// Pull an image from a registry into the store.
    Pull(cmd::pull::PullArgs),
    /// Push an image to its registry.
    Push(cmd::push::PushArgs),
    /// Give an image in the store another name.
    Tag(cmd::tag::TagArgs),
    /// Show images' manifests and configs as JSON.
    Inspect(cmd::inspect::InspectArgs),
    /// Show an image's steps, newest first.
    History(cmd::history::HistoryArgs),
    /// Remove image names.
    Rmi(cmd::rmi::RmiArgs),
    /// Remove what tagged images do not need (`--all`: the build cache too).
    Prune(cmd::prune::PruneArgs),
    /// Show the store's disk use.
    Du(cmd::prune::DuArgs),
    /// Write images to a docker archive.
    Save(cmd::archive::SaveArgs),
    /// Read images from a docker archive.
    Load(cmd::archive::LoadArgs),
    /// Log in to a registry.
    Login(cmd::login::LoginArgs),
    /// Log out from a registry.
    Logout(cmd::login::LogoutArgs),
    /// Image indexes in a registry: inspect one, or join pushed images
    /// into one (`docker buildx imagetools`).
    #[command(subcommand)]
    Manifest(cmd::manifest::ManifestCommand),
    /// Parser and store diagnostics.
    #[command(subcommand)]
    Debug(cmd::debug::DebugCommand),
    /// Docker's `image` commands (`image ls`, `image rm`, `image prune`, …).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Docker's `system df` and `system prune`.
    #[command(subcommand)]
    System(SystemCommand),
    /// Docker's `builder prune`.
    #[command(subcommand)]
    Builder(BuilderCommand),
}

/// `rbuild image …`: the image commands under Docker's management names.
#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// `rbuild images`.
    #[command(alias = "list")]
    Ls(cmd::images::ImagesArgs),
    /// `rbuild rmi`.
    #[command(alias = "remove")]
    Rm(cmd::rmi::RmiArgs),
    /// `rbuild prune`.
    Prune(cmd::prune::PruneArgs),
    /// `rbuild inspect`.
    Inspect(cmd::inspect::InspectArgs),
    /// `rbuild tag`.
    Tag(cmd::tag::TagArgs),
    /// `rbuild pull`.
    Pull(cmd::pull::PullArgs),
    /// `rbuild push`.
    Push(cmd::push::PushArgs),
    /// `rbuild save`.
    Save(cmd::archive::SaveArgs),
    /// `rbuild load`.
    Load(cmd::archive::LoadArgs),
    /// `rbuild history`.
    History(cmd::history::HistoryArgs),
}

/// `rbuild system …`.
#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// `rbuild du`.
    Df(cmd::prune::DuArgs),
    /// `rbuild prune`.
    Prune(cmd::prune::PruneArgs),
}

/// `rbuild builder …`.
#[derive(Debug, Subcommand)]
enum BuilderCommand {
    /// `rbuild prune` (`-a`: the whole build cache).
    Prune(cmd::prune::PruneArgs),
}

impl Command {
    /// The command Docker's management form stands for (`image ls` is
    /// `images`).
    fn unaliased(self) -> Command {
        match self {
            Command::Image(c) => match c {
                ImageCommand::Ls(a) => Command::Images(a),
                ImageCommand::Rm(a) => Command::Rmi(a),
                ImageCommand::Prune(a) => Command::Prune(a),
                ImageCommand::Inspect(a) => Command::Inspect(a),
                ImageCommand::Tag(a) => Command::Tag(a),
                ImageCommand::Pull(a) => Command::Pull(a),
                ImageCommand::Push(a) => Command::Push(a),
                ImageCommand::Save(a) => Command::Save(a),
                ImageCommand::Load(a) => Command::Load(a),
                ImageCommand::History(a) => Command::History(a),
            },
            Command::System(SystemCommand::Df(a)) => Command::Du(a),
            Command::System(SystemCommand::Prune(a))
            | Command::Builder(BuilderCommand::Prune(a)) => Command::Prune(a),
            other => other,
        }
    }
}

/// Whether `word` names a subcommand, so that `rbuild PATH` can mean
/// `rbuild build PATH`.
fn is_subcommand(word: &str) -> bool {
    word == "help"
        || Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word))
}

/// Whether a word that is no subcommand is a build context, as `docker
/// build` takes them: `-`, a URL, an existing directory, or a path (it has
/// a `/` or starts with `.`).
fn is_context(word: &str) -> bool {
    word == "-"
        || word.contains("://")
        || word.contains('/')
        || word.starts_with('.')
        || std::path::Path::new(word).is_dir()
}

/// Docker commands that need a daemon's running containers, which rbuild
/// does not have: a sandbox lives as long as its `rbuild run`.
const DAEMON_COMMANDS: &[&str] = &[
    "exec", "ps", "stop", "start", "restart", "kill", "logs", "attach", "wait",
];

/// The subcommand nearest to a mistyped `word`, if one is near.
fn nearest_subcommand(word: &str) -> Option<String> {
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .map(|name| (strsim::levenshtein(word, &name), name))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, name)| name)
}

fn main() -> ExitCode {
    heap::limit_arenas();
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(first) = first_positional(&args)
        && !is_subcommand(&first)
    {
        if DAEMON_COMMANDS.contains(&first.as_str()) {
            eprintln!(
                "error: rbuild has no daemon: `{first}` needs running containers, and a sandbox lives only as long as its `rbuild run`"
            );
            return ExitCode::FAILURE;
        }
        if !is_context(&first) {
            let hint = nearest_subcommand(&first)
                .map(|n| format!("; did you mean {n:?}?"))
                .unwrap_or_default();
            eprintln!(
                "error: unknown command {first:?}{hint} (a build context is a directory, `-`, a URL, or a path with `/`; see rbuild --help)"
            );
            return ExitCode::from(2);
        }
        let at = args
            .iter()
            .position(|a| a.to_str() == Some(first.as_str()))
            .expect("found above");
        args.insert(at, "build".into());
    }
    let cli = Cli::parse_from(args);
    // `docker run` exits 125 when the error is its own, not the command's.
    let failure = match cli.command {
        Command::Run(_) => ExitCode::from(125),
        _ => ExitCode::FAILURE,
    };
    let result = run(cli);
    if let Some(code) = signals::cancelled() {
        return code;
    }
    match result {
        Ok(code) => code,
        Err(e) if stdout::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            failure
        }
    }
}

/// The first argument that is not a global option (or its value).
fn first_positional(args: &[std::ffi::OsString]) -> Option<String> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_str()?;
        if a == "--root" {
            it.next();
        } else if a.starts_with("--root=") {
            continue;
        } else if a.starts_with('-') && a != "-" {
            return None;
        } else {
            return Some(a.to_string());
        }
    }
    None
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The store's place depends on who the user is on the host: decide it
    // before becoming root in a user namespace (rootless mode), which must
    // happen while the process has one thread.
    let root = root::store_root(cli.root);
    rbuild_executor::enter_user_namespace()?;
    let cancel = rbuild_build::CancelToken::new();
    let command = cli.command.unaliased();
    match &command {
        Command::Build(_) => signals::handle(signals::OnSignal::Cancel(cancel.clone()))?,
        Command::Run(_) => signals::handle(signals::OnSignal::Forward)?,
        _ => {}
    }
    // Both run sandboxes: their seccomp filter is loaded meanwhile
    // (compiled once, then kept in the store); held until the command ends.
    let _seccomp = matches!(command, Command::Build(_) | Command::Run(_)).then(|| {
        rbuild_executor::precompile_seccomp(Some(rbuild_executor::SeccompCache {
            file: root.join("seccomp.bpf"),
            temp_dir: root.join("tmp"),
        }))
    });
    match command {
        Command::Build(args) => cmd::build::run(&root, args, &cancel),
        Command::Run(args) => cmd::run::run(&root, args),
        Command::Images(args) => cmd::images::run(&root, args),
        Command::Pull(args) => cmd::pull::run(&root, args),
        Command::Tag(args) => cmd::tag::run(&root, args),
        Command::Push(args) => cmd::push::run(&root, args),
        Command::Inspect(args) => cmd::inspect::run(&root, args),
        Command::History(args) => cmd::history::run(&root, args),
        Command::Rmi(args) => cmd::rmi::run(&root, args),
        Command::Prune(args) => cmd::prune::run(&root, args),
        Command::Du(args) => cmd::prune::du(&root, args),
        Command::Save(args) => cmd::archive::save(&root, args),
        Command::Load(args) => cmd::archive::load(&root, args),
        Command::Login(args) => cmd::login::login(&root, args),
        Command::Logout(args) => cmd::login::logout(&root, args),
        Command::Manifest(command) => cmd::manifest::run(command),
        Command::Debug(command) => cmd::debug::run(&root, command),
        Command::Image(_) | Command::System(_) | Command::Builder(_) => {
            unreachable!("unaliased above")
        }
    }
}
