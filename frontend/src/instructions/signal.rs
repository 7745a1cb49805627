//! STOPSIGNAL values, checked as BuildKit checks them (moby's
//! `signal.ParseSignal`): a non-zero number, or a Linux signal name with
//! or without `SIG`, in any case.

/// Linux signal names without `SIG` (moby's `SignalMap`).
const NAMES: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
];

/// Checks a (expanded) STOPSIGNAL value.
pub fn check(raw: &str) -> Result<(), String> {
    let invalid = || format!("Invalid signal: {raw}");
    if let Ok(n) = raw.parse::<i64>() {
        return if n == 0 || i32::try_from(n).is_err() {
            Err(invalid())
        } else {
            Ok(())
        };
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    // RTMIN+1 … RTMIN+15 and RTMAX-14 … RTMAX-1, written exactly so.
    let realtime = |base: &str, sign: char, last: u8| {
        name.strip_prefix(base)
            .and_then(|rest| rest.strip_prefix(sign))
            .is_some_and(|n| (1..=last).any(|k| n == k.to_string()))
    };
    if NAMES.contains(&name) || realtime("RTMIN", '+', 15) || realtime("RTMAX", '-', 14) {
        Ok(())
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_realtime_signals() {
        for ok in [
            "SIGTERM",
            "term",
            "SIGRTMIN+3",
            "RTMAX-1",
            "9",
            "-1",
            "sigusr1",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "0",
            "SIGFOO",
            "RTMIN+16",
            "RTMAX+1",
            "",
            "SIG",
            "99999999999",
        ] {
            assert_eq!(check(bad), Err(format!("Invalid signal: {bad}")), "{bad}");
        }
    }
}
