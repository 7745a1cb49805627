//! Published ports (`rbuild run -p HOST:CONTAINER`): the sandbox's
//! `slirp4netns` helper listens on the host port and forwards each
//! connection to the sandbox's address (10.0.2.100), asked through its
//! API socket (`add_hostfwd`), as rootless Docker and Podman do.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::ExecError;

/// A port of the host forwarded to one of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    /// The host address to listen on (`0.0.0.0` when not given).
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The sandbox's port.
    pub container_port: u16,
    /// UDP rather than TCP.
    pub udp: bool,
}

impl PortForward {
    /// Parses `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`, as `docker
    /// run -p` (a host port is required: rbuild has no daemon to report
    /// one it picked).
    pub fn parse(value: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid -p {value:?}: {why}");
        let (spec, proto) = value.split_once('/').unwrap_or((value, "tcp"));
        let udp = match proto {
            "tcp" => false,
            "udp" => true,
            _ => return Err(invalid("the protocol must be tcp or udp")),
        };
        let (host, container) = spec
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected [HOST_IP:]HOST_PORT:CONTAINER_PORT"))?;
        let (host_ip, host_port) = match host.rsplit_once(':') {
            Some((ip, port)) => {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                let ip: IpAddr = ip.parse().map_err(|_| invalid("bad host address"))?;
                (Some(ip), port)
            }
            None => (None, host),
        };
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
        Ok(Self {
            host_ip,
            host_port: port(host_port).ok_or_else(|| invalid("bad host port"))?,
            container_port: port(container).ok_or_else(|| invalid("bad container port"))?,
            udp,
        })
    }
}

/// How long the helper may take to open its API socket.
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the helper listening on `socket` to forward every port of
/// `ports`; an error names the port and the helper's answer.
pub(crate) fn publish(socket: &Path, ports: &[PortForward]) -> Result<(), ExecError> {
    for p in ports {
        let host_addr = p
            .host_ip
            .map_or_else(|| String::from("0.0.0.0"), |ip| ip.to_string());
        let request = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": if p.udp { "udp" } else { "tcp" },
                "host_addr": host_addr,
                "host_port": p.host_port,
                "guest_port": p.container_port,
            }
        });
        let answer = ask(socket, &request.to_string())?;
        let parsed: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        if parsed.get("return").is_none() {
            return Err(ExecError::Setup(format!(
                "publish port {}:{}: slirp4netns answered {}",
                p.host_port,
                p.container_port,
                answer.trim()
            )));
        }
    }
    Ok(())
}

/// One request to the API socket (waiting for the helper to open it); its
/// answer.
fn ask(socket: &Path, request: &str) -> Result<String, ExecError> {
    let fail =
        |e: std::io::Error| ExecError::Setup(format!("slirp4netns API {}: {e}", socket.display()));
    let started = Instant::now();
    let mut stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(e) if started.elapsed() > API_TIMEOUT => return Err(fail(e)),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    stream.set_read_timeout(Some(API_TIMEOUT)).map_err(fail)?;
    stream.write_all(request.as_bytes()).map_err(fail)?;
    stream.shutdown(std::net::Shutdown::Write).map_err(fail)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(fail)?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_docker_writes_them() {
        let p = PortForward::parse("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.udp),
            (None, 8080, 80, false)
        );
        let p = PortForward::parse("127.0.0.1:53:5353/udp").unwrap();
        assert_eq!(p.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert!(p.udp);
        assert!(
            PortForward::parse("[::1]:8080:80")
                .unwrap()
                .host_ip
                .is_some()
        );
        for bad in [
            "80",
            "0:80",
            "a:80",
            "8080:80/sctp",
            "1.2.3:8080:80",
            "8080:99999",
        ] {
            assert!(PortForward::parse(bad).is_err(), "{bad}");
        }
    }
}
