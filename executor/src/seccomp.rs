//! Seccomp: Docker's default profile (moby/profiles `seccomp/default.json`,
//! the one BuildKit's RUN and `docker run` apply) or a profile file in the
//! same format, turned into a BPF program with libseccomp.
//!
//! A profile is first resolved for this machine the way moby does it: the
//! native architecture and its `archMap` sub-architectures (x86_64 also
//! filters x86 and x32 system calls), and each rule's `includes` /
//! `excludes` conditions on the architecture, the sandbox's bounding
//! capabilities and the kernel version. The resolved rules are then
//! compiled, as runc does (argument conditions on the same index become
//! separate rules, unknown system calls are skipped). Compiling takes
//! milliseconds, so the default profile is compiled once per machine: the
//! program is kept in the store (`cache`) and loaded once per process; the
//! sandbox's child only hands the prepared program to the kernel.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;

use crate::ExecError;

mod cache;

/// Docker's default profile, as moby/profiles publishes it.
const DEFAULT_PROFILE: &str = include_str!("seccomp/default.json");

/// A profile file (`defaultAction`, `archMap`, `syscalls`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    syscalls: Option<Vec<Rule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    sub_architectures: Option<Vec<String>>,
}

/// One rule: system calls, an action, argument conditions, and when the
/// rule applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    name: Option<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Option<Condition>,
    #[serde(default)]
    excludes: Option<Condition>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    caps: Option<Vec<String>>,
    min_kernel: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

/// A compiled filter, ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug)]
pub struct Program {
    filter: Vec<libc::sock_filter>,
}

impl Program {
    /// A program from its instructions in the kernel's layout (8 bytes
    /// each, native byte order), as libseccomp exports them.
    fn from_bytes(bytes: &[u8]) -> Result<Self, ExecError> {
        let size = std::mem::size_of::<libc::sock_filter>();
        if bytes.is_empty()
            || !bytes.len().is_multiple_of(size)
            || bytes.len() / size > usize::from(u16::MAX)
        {
            return Err(bad("a malformed BPF program"));
        }
        let filter = bytes
            .chunks_exact(size)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Self { filter })
    }

    /// The instructions in the layout [`Program::from_bytes`] reads.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.filter.len() * 8);
        for i in &self.filter {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.extend_from_slice(&[i.jt, i.jf]);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }

    /// The `sock_fprog` to install; valid while `self` lives.
    pub fn fprog(&self) -> libc::sock_fprog {
        libc::sock_fprog {
            len: self.filter.len() as u16,
            filter: self.filter.as_ptr().cast_mut(),
        }
    }
}

/// Docker's name of this machine's architecture (`amd64`, `arm64`, …).
fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "loongarch64" => "loongarch64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// libseccomp's name of the native architecture (`SCMP_ARCH_X86_64`).
fn native_scmp_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "x86" => "SCMP_ARCH_X86",
        "arm" => "SCMP_ARCH_ARM",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390x" => "SCMP_ARCH_S390X",
        "loongarch64" => "SCMP_ARCH_LOONGARCH64",
        "powerpc64" => "SCMP_ARCH_PPC64LE",
        _ => "SCMP_ARCH_NATIVE",
    }
}

/// This kernel's (major, minor) version.
fn kernel_version() -> (u32, u32) {
    // SAFETY: uname fills the struct; release is NUL-terminated.
    let release = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return (0, 0);
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    };
    parse_version(&release).unwrap_or((0, 0))
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether the condition holds for `caps` (the bounding set) on this
/// machine: every listed capability present, the architecture listed, the
/// kernel at least as new.
fn holds(c: &Condition, caps: &[&str], kernel: (u32, u32)) -> Result<bool, ExecError> {
    let arch_ok = c
        .arches
        .as_ref()
        .is_none_or(|a| a.is_empty() || a.iter().any(|x| x == native_arch()));
    let caps_ok = c
        .caps
        .as_ref()
        .is_none_or(|cs| cs.iter().all(|x| caps.contains(&x.as_str())));
    let kernel_ok = match &c.min_kernel {
        None => true,
        Some(v) => kernel >= parse_version(v).ok_or_else(|| bad(format!("minKernel {v}")))?,
    };
    Ok(arch_ok && caps_ok && kernel_ok)
}

/// Whether an `excludes` condition matches: any listed architecture or
/// capability, or the kernel at least as new.
fn excluded(c: &Condition, caps: &[&str], kernel: (u32, u32)) -> Result<bool, ExecError> {
    let arch = c
        .arches
        .as_ref()
        .is_some_and(|a| a.iter().any(|x| x == native_arch()));
    let cap = c
        .caps
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|x| caps.contains(&x.as_str())));
    let kernel = match &c.min_kernel {
        None => false,
        Some(v) => kernel >= parse_version(v).ok_or_else(|| bad(format!("minKernel {v}")))?,
    };
    Ok(arch || cap || kernel)
}

fn bad(what: impl std::fmt::Display) -> ExecError {
    ExecError::Setup(format!("seccomp profile: {what}"))
}

/// A profile resolved for this machine and a bounding set.
struct Resolved {
    default_action: ScmpAction,
    arches: Vec<String>,
    rules: Vec<Rule>,
    default_errno: u32,
}

fn resolve(profile: &Profile, caps: &[&str]) -> Result<Resolved, ExecError> {
    if !profile.architectures.is_empty() && profile.arch_map.as_ref().is_some_and(|m| !m.is_empty())
    {
        return Err(bad("both 'architectures' and 'archMap' are given"));
    }
    let default_errno = profile.default_errno_ret.unwrap_or(libc::EPERM as u32);
    let mut arches = profile.architectures.clone();
    if let Some(map) = &profile.arch_map
        && let Some(m) = map.iter().find(|m| m.architecture == native_scmp_arch())
    {
        arches.push(m.architecture.clone());
        arches.extend(m.sub_architectures.iter().flatten().cloned());
    }
    let kernel = kernel_version();
    let mut rules = Vec::new();
    for rule in profile.syscalls.iter().flatten() {
        if rule.name.is_some() && !rule.names.is_empty() {
            return Err(bad("a rule has both 'name' and 'names'"));
        }
        if let Some(c) = &rule.excludes
            && excluded(c, caps, kernel)?
        {
            continue;
        }
        if let Some(c) = &rule.includes
            && !holds(c, caps, kernel)?
        {
            continue;
        }
        let mut rule = rule.clone();
        rule.names.extend(rule.name.take());
        rules.push(rule);
    }
    Ok(Resolved {
        default_action: action(&profile.default_action, Some(default_errno))?,
        arches,
        rules,
        default_errno,
    })
}

fn action(name: &str, errno: Option<u32>) -> Result<ScmpAction, ExecError> {
    let errno = errno.map(|e| e as i32);
    let name = match name {
        // libseccomp's own names for the same actions.
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => "SCMP_ACT_KILL_THREAD",
        other => other,
    };
    ScmpAction::from_str(name, errno).map_err(|e| bad(format!("action {name}: {e}")))
}

fn compare(arg: &Arg) -> Result<ScmpArgCompare, ExecError> {
    let op = match arg.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        "SCMP_CMP_MASKED_EQ" => {
            return Ok(ScmpArgCompare::new(
                arg.index,
                ScmpCompareOp::MaskedEqual(arg.value),
                arg.value_two,
            ));
        }
        other => return Err(bad(format!("comparison {other}"))),
    };
    Ok(ScmpArgCompare::new(arg.index, op, arg.value))
}

/// Compiles a resolved profile into a BPF program.
fn compile(r: &Resolved) -> Result<Program, ExecError> {
    let seccomp = |e: libseccomp::error::SeccompError| bad(e);
    let mut ctx = ScmpFilterContext::new(r.default_action).map_err(seccomp)?;
    // no_new_privs is the sandbox's decision, not the filter's.
    ctx.set_ctl_nnp(false).map_err(seccomp)?;
    for a in &r.arches {
        let arch: ScmpArch = a.parse().map_err(|_| bad(format!("architecture {a}")))?;
        if arch != ScmpArch::native() {
            ctx.add_arch(arch).map_err(seccomp)?;
        }
    }
    for rule in &r.rules {
        let act = action(
            &rule.action,
            Some(rule.errno_ret.unwrap_or(r.default_errno)),
        )?;
        if act == r.default_action {
            continue;
        }
        let args = rule.args.as_deref().unwrap_or_default();
        let conds: Vec<ScmpArgCompare> = args.iter().map(compare).collect::<Result<_, _>>()?;
        let same_index = args
            .iter()
            .enumerate()
            .any(|(i, a)| args[..i].iter().any(|b| b.index == a.index));
        for name in &rule.names {
            // A system call this machine does not know is skipped, as runc does.
            let Ok(call) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if same_index {
                for c in &conds {
                    ctx.add_rule_conditional(act, call, std::slice::from_ref(c))
                        .map_err(seccomp)?;
                }
            } else {
                ctx.add_rule_conditional(act, call, &conds)
                    .map_err(seccomp)?;
            }
        }
    }
    // SAFETY: memfd_create with a valid name; the fd is owned below.
    let fd = unsafe { libc::memfd_create(c"seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(bad(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ctx.export_bpf(&fd).map_err(seccomp)?;
    let mut file = std::fs::File::from(fd);
    std::io::Seek::rewind(&mut file).map_err(bad)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(bad)?;
    Program::from_bytes(&bytes)
}

fn parse(text: &str) -> Result<Profile, ExecError> {
    serde_json::from_str(text).map_err(bad)
}

/// Where the compiled default program is kept across processes (see
/// `cache`), once [`precompile`] named a file.
static CACHE_FILE: OnceLock<ProgramCache> = OnceLock::new();

/// A file that keeps a compiled program for the processes to come.
#[derive(Debug, Clone)]
pub struct ProgramCache {
    /// The file (in the store's root).
    pub file: PathBuf,
    /// Where it is written before it is renamed to `file`: a directory on
    /// the same filesystem whose leftovers are swept (the store's `tmp/`),
    /// so that a process killed between the write and the rename leaves
    /// no temp file beside `file`.
    pub temp_dir: PathBuf,
}

/// Starts loading (or, the first time on this kernel, compiling) the
/// default profile on a thread of its own, so that it overlaps the work
/// before the first sandbox (store, image, layers). `cache` names the file
/// that keeps the compiled program for the processes to come (in the
/// store): libseccomp takes 5-30 ms on this project's machine, where a
/// sandbox start takes about 15 ms. Keep what it returns until the
/// process is done.
pub fn precompile(cache: Option<ProgramCache>) -> Precompiling {
    if let Some(file) = cache {
        let _ = CACHE_FILE.set(file);
    }
    let thread = std::thread::Builder::new()
        .name(String::from("seccomp"))
        .spawn(|| drop(default_program()));
    Precompiling(thread.ok())
}

/// The thread [`precompile`] started; dropping this waits for it. A
/// process that ended (a build failing at once) while the thread wrote
/// the cache file would leave its temp file in the store's `tmp/`, and the
/// next process would compile again: waiting costs at most what is left
/// of one compile, on a store's first use only.
#[must_use = "dropping it waits for the compile"]
pub struct Precompiling(Option<std::thread::JoinHandle<()>>);

impl Drop for Precompiling {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

/// Docker's default profile for Docker's default capabilities, compiled on
/// first use (or loaded from the cache file) and shared by every sandbox
/// of this process.
pub fn default_program() -> Result<Arc<Program>, ExecError> {
    static PROGRAM: OnceLock<Result<Arc<Program>, String>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            cached(
                DEFAULT_PROFILE,
                &crate::caps::default_names(),
                CACHE_FILE.get(),
            )
            .map(Arc::new)
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(ExecError::Setup)
}

/// `profile` compiled for the bounding set `caps`: loaded from `cache`
/// when it holds this compilation, else compiled and stored there (a
/// store that fails only costs the next process the compilation).
fn cached(
    profile: &str,
    caps: &[&str],
    cache: Option<&ProgramCache>,
) -> Result<Program, ExecError> {
    let key = cache.map(|c| (c, cache::Key::new(profile, caps)));
    if let Some((c, key)) = &key
        && let Some(program) = cache::load(&c.file, key)
    {
        return Ok(program);
    }
    let program = compile(&resolve(&parse(profile)?, caps)?)?;
    if let Some((c, key)) = &key {
        let _ = cache::store(c, key, &program);
    }
    Ok(program)
}

/// A profile file's text (Docker's default profile when `None`) compiled
/// for the bounding set `caps` (`--cap-add` lifts the rules a capability
/// conditions, as in Docker).
pub fn program(profile: Option<&str>, caps: &[&str]) -> Result<Arc<Program>, ExecError> {
    cached(profile.unwrap_or(DEFAULT_PROFILE), caps, None).map(Arc::new)
}

/// The profile as an OCI runtime spec's `linux.seccomp` (for runc and
/// crun): resolved for this machine and the bounding set `caps`.
pub fn oci(profile: Option<&str>, caps: &[&str]) -> Result<serde_json::Value, ExecError> {
    let r = resolve(&parse(profile.unwrap_or(DEFAULT_PROFILE))?, caps)?;
    let syscalls: Vec<serde_json::Value> = r
        .rules
        .iter()
        .map(|rule| {
            let args: Vec<serde_json::Value> = rule
                .args
                .iter()
                .flatten()
                .map(|a| {
                    serde_json::json!({"index": a.index, "value": a.value,
                        "valueTwo": a.value_two, "op": a.op})
                })
                .collect();
            let mut v =
                serde_json::json!({"names": rule.names, "action": rule.action, "args": args});
            if let Some(e) = rule.errno_ret {
                v["errnoRet"] = e.into();
            }
            v
        })
        .collect();
    let profile = parse(profile.unwrap_or(DEFAULT_PROFILE))?;
    Ok(serde_json::json!({
        "defaultAction": profile.default_action,
        "defaultErrnoRet": r.default_errno,
        "architectures": r.arches,
        "syscalls": syscalls,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_names(r: &Resolved) -> Vec<&str> {
        r.rules
            .iter()
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn the_default_profile_resolves_for_the_default_capabilities() {
        let caps = crate::caps::default_names();
        let r = resolve(&parse(DEFAULT_PROFILE).unwrap(), &caps).unwrap();
        let names = rule_names(&r);
        assert!(
            names.contains(&"read") && names.contains(&"chroot"),
            "CAP_SYS_CHROOT is default"
        );
        for blocked in [
            "mount", "umount2", "unshare", "keyctl", "bpf", "reboot", "setns",
        ] {
            assert!(!names.contains(&blocked), "{blocked} is not allowed");
        }
        // clone only without namespace flags; clone3 fails with ENOSYS.
        let clone = r.rules.iter().find(|r| r.names == ["clone"]).unwrap();
        assert_eq!(clone.args.as_ref().unwrap()[0].op, "SCMP_CMP_MASKED_EQ");
        let clone3 = r.rules.iter().find(|r| r.names == ["clone3"]).unwrap();
        assert_eq!(clone3.errno_ret, Some(libc::ENOSYS as u32));
        if native_arch() == "amd64" {
            assert_eq!(
                r.arches,
                ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
            );
            assert!(names.contains(&"arch_prctl"));
        }
        assert!(default_program().unwrap().fprog().len > 100);
    }

    #[test]
    fn capabilities_switch_rules_on_and_off() {
        let mut caps = crate::caps::default_names();
        caps.push("CAP_SYS_ADMIN");
        let r = resolve(&parse(DEFAULT_PROFILE).unwrap(), &caps).unwrap();
        let names = rule_names(&r);
        assert!(names.contains(&"mount") && names.contains(&"unshare"));
        assert!(
            !r.rules.iter().any(|r| r.names == ["clone3"]),
            "clone3 allowed"
        );
    }

    #[test]
    fn the_default_program_is_compiled_once_then_loaded_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("seccomp.bpf");
        let store = ProgramCache {
            file: file.clone(),
            temp_dir: dir.path().to_path_buf(),
        };
        let caps = crate::caps::default_names();
        let fresh = cached(DEFAULT_PROFILE, &caps, None).unwrap().to_bytes();
        assert_eq!(
            cached(DEFAULT_PROFILE, &caps, Some(&store))
                .unwrap()
                .to_bytes(),
            fresh
        );
        assert!(file.exists(), "the compilation was stored");
        assert_eq!(
            cached(DEFAULT_PROFILE, &caps, Some(&store))
                .unwrap()
                .to_bytes(),
            fresh
        );
        // What the file holds under the key is what is used.
        let key = cache::Key::new(DEFAULT_PROFILE, &caps);
        let tiny = Program::from_bytes(&fresh[fresh.len() - 8..]).unwrap();
        cache::store(&store, &key, &tiny).unwrap();
        assert_eq!(
            cached(DEFAULT_PROFILE, &caps, Some(&store))
                .unwrap()
                .to_bytes(),
            tiny.to_bytes()
        );
        // Another profile misses and replaces it.
        let other = r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#;
        assert_ne!(
            cached(other, &caps, Some(&store)).unwrap().to_bytes(),
            tiny.to_bytes()
        );
        assert!(cache::load(&file, &key).is_none());
    }

    #[test]
    fn bad_profiles_are_reported() {
        let e = program(Some("{"), &[]).unwrap_err().to_string();
        assert!(e.contains("seccomp profile"), "{e}");
        let e = program(Some(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("SCMP_ACT_NOPE"), "{e}");
        assert_eq!(parse_version("6.18.44-fc"), Some((6, 18)));
    }
}
