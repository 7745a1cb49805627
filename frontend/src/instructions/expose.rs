//! `EXPOSE` port specs, validated as BuildKit's `convert_expose.go` does:
//! `[[ip:]host:]port[-end][/proto]`, ports 0–65535, start ≤ end, protocol
//! tcp, udp or sctp. A spec names at most 65,536 ports, so expanding a
//! range is bounded.

/// One validated spec: a range of container ports and its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// First port.
    pub start: u16,
    /// Last port (equal to `start` for a single port).
    pub end: u16,
    /// Lower-cased protocol.
    pub proto: String,
}

impl PortSpec {
    /// The image config keys (`80/tcp`) of every port of the range.
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        (self.start..=self.end).map(|p| format!("{p}/{}", self.proto))
    }

    /// Parses one spec; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        // The last two `:` fields are host and container port, anything
        // before them the IP.
        let mut parts = raw.rsplitn(3, ':');
        let container = parts.next().unwrap_or_default();
        let host = parts.next().unwrap_or_default();
        let ip = parts.next().unwrap_or_default();
        let (port, proto) = container.split_once('/').unwrap_or((container, ""));
        if port.is_empty() {
            return Err(format!("invalid port: {raw:?}: no port specified"));
        }
        let proto = match proto.to_ascii_lowercase().as_str() {
            "" => String::from("tcp"),
            p @ ("tcp" | "udp" | "sctp") => p.to_string(),
            _ => return Err(format!("invalid port: {raw:?}: invalid proto: {proto}")),
        };
        let ip = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip);
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("invalid IP address: {ip}"));
        }
        let (start, end) =
            range(port).map_err(|e| format!("invalid containerPort: {port} ({e})"))?;
        if !host.is_empty() {
            let (hs, he) = range(host).map_err(|e| format!("invalid hostPort: {host} ({e})"))?;
            if end - start != he - hs && end != start {
                return Err(format!(
                    "invalid ranges specified for container and host Ports: {port} and {host}"
                ));
            }
        }
        Ok(Self { start, end, proto })
    }
}

/// `N` or `N-M` (`N-N` is N).
fn range(ports: &str) -> Result<(u16, u16), String> {
    let (start, end) = ports.split_once('-').unwrap_or((ports, ports));
    let start = number(start).map_err(|e| format!("invalid start port '{start}': {e}"))?;
    let end = number(end).map_err(|e| format!("invalid end port '{end}': {e}"))?;
    if end < start {
        return Err(format!("invalid port range: {ports}"));
    }
    Ok((start, end))
}

fn number(raw: &str) -> Result<u16, String> {
    if raw.is_empty() {
        return Err(String::from("value is empty"));
    }
    let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(String::from("invalid syntax"));
    }
    raw.parse::<u16>()
        .map_err(|_| String::from("value out of range (0–65535)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(raw: &str) -> Result<Vec<String>, String> {
        PortSpec::parse(raw).map(|s| s.keys().collect())
    }

    #[test]
    fn single_ports_ranges_and_protocols() {
        assert_eq!(keys("80"), Ok(vec![String::from("80/tcp")]));
        assert_eq!(keys("53/UDP"), Ok(vec![String::from("53/udp")]));
        assert_eq!(keys("9/sctp"), Ok(vec![String::from("9/sctp")]));
        assert_eq!(keys("8000-8002/tcp").unwrap().len(), 3);
        assert_eq!(keys("0-65535").unwrap().len(), 65536);
        assert_eq!(keys("7-7"), Ok(vec![String::from("7/tcp")]));
        assert_eq!(keys("127.0.0.1:8080:80"), Ok(vec![String::from("80/tcp")]));
        assert_eq!(keys("[::1]:8080:80"), Ok(vec![String::from("80/tcp")]));
    }

    #[test]
    fn out_of_range_reversed_and_unknown_protocols_are_errors() {
        for (raw, message) in [
            (
                "1-200000",
                "invalid containerPort: 1-200000 (invalid end port '200000': value out of range (0–65535))",
            ),
            (
                "1-4294967296",
                "invalid containerPort: 1-4294967296 (invalid end port '4294967296': value out of range (0–65535))",
            ),
            (
                "65536",
                "invalid containerPort: 65536 (invalid start port '65536': value out of range (0–65535))",
            ),
            (
                "90-80",
                "invalid containerPort: 90-80 (invalid port range: 90-80)",
            ),
            ("80/icmp", "invalid port: \"80/icmp\": invalid proto: icmp"),
            ("/tcp", "invalid port: \"/tcp\": no port specified"),
            (
                "http",
                "invalid containerPort: http (invalid start port 'http': invalid syntax)",
            ),
            (
                "1-",
                "invalid containerPort: 1- (invalid end port '': value is empty)",
            ),
            ("nope:80:80", "invalid IP address: nope"),
            (
                "1-3:5-9",
                "invalid ranges specified for container and host Ports: 5-9 and 1-3",
            ),
        ] {
            assert_eq!(keys(raw).unwrap_err(), message, "{raw}");
        }
    }
}
