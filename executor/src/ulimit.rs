//! Process resource limits (`--ulimit NAME=SOFT[:HARD]`), as Docker names
//! them, set with `setrlimit` in the sandbox before the exec.

use std::ffi::c_int;

/// One resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    /// The `RLIMIT_*` resource.
    pub resource: c_int,
    /// The soft limit (`u64::MAX`: unlimited).
    pub soft: u64,
    /// The hard limit (`u64::MAX`: unlimited).
    pub hard: u64,
}

/// Docker's names for the resources (`docker run --ulimit`).
const NAMES: &[(&str, c_int)] = &[
    ("core", libc::RLIMIT_CORE as c_int),
    ("cpu", libc::RLIMIT_CPU as c_int),
    ("data", libc::RLIMIT_DATA as c_int),
    ("fsize", libc::RLIMIT_FSIZE as c_int),
    ("locks", libc::RLIMIT_LOCKS as c_int),
    ("memlock", libc::RLIMIT_MEMLOCK as c_int),
    ("msgqueue", libc::RLIMIT_MSGQUEUE as c_int),
    ("nice", libc::RLIMIT_NICE as c_int),
    ("nofile", libc::RLIMIT_NOFILE as c_int),
    ("nproc", libc::RLIMIT_NPROC as c_int),
    ("rss", libc::RLIMIT_RSS as c_int),
    ("rtprio", libc::RLIMIT_RTPRIO as c_int),
    ("rttime", libc::RLIMIT_RTTIME as c_int),
    ("sigpending", libc::RLIMIT_SIGPENDING as c_int),
    ("stack", libc::RLIMIT_STACK as c_int),
];

impl Ulimit {
    /// Parses `NAME=SOFT[:HARD]` (a missing hard limit is the soft one;
    /// `-1` or `unlimited` is no limit), as `docker run --ulimit`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid --ulimit {value:?}: {why}");
        let (name, limits) = value
            .split_once('=')
            .ok_or_else(|| invalid("expected NAME=SOFT[:HARD]"))?;
        let resource = NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
            .ok_or_else(|| invalid("unknown resource"))?;
        let number = |s: &str| match s {
            "-1" | "unlimited" => Ok(u64::MAX),
            _ => s.parse::<u64>().map_err(|_| invalid("not a number")),
        };
        let (soft, hard) = match limits.split_once(':') {
            Some((s, h)) => (number(s)?, number(h)?),
            None => (number(limits)?, number(limits)?),
        };
        if soft > hard {
            return Err(invalid("the soft limit is above the hard limit"));
        }
        Ok(Self {
            resource,
            soft,
            hard,
        })
    }

    /// The limit as `setrlimit` takes it.
    pub(crate) fn rlimit(&self) -> libc::rlimit {
        let value = |v: u64| {
            if v == u64::MAX {
                libc::RLIM_INFINITY
            } else {
                v as libc::rlim_t
            }
        };
        libc::rlimit {
            rlim_cur: value(self.soft),
            rlim_max: value(self.hard),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_docker() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!(
            (u.resource, u.soft, u.hard),
            (libc::RLIMIT_NOFILE as c_int, 1024, 2048)
        );
        let u = Ulimit::parse("core=-1").unwrap();
        assert_eq!((u.soft, u.hard), (u64::MAX, u64::MAX));
        assert_eq!(u.rlimit().rlim_cur, libc::RLIM_INFINITY);
        assert!(Ulimit::parse("nofile=10:5").is_err());
        assert!(Ulimit::parse("files=10").is_err());
        assert!(Ulimit::parse("nofile").is_err());
        assert!(Ulimit::parse("nofile=many").is_err());
    }
}
