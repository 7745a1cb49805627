//! The network helper gets its pipes and namespace whatever numbers they
//! have here: a build with many layers open (each overlay layer is named
//! by a file descriptor) makes them land at 100 and above, where the
//! helper's file descriptors were once shuffled through and overwrote one
//! another (`setns: Invalid argument` around the 72nd RUN of a build).
//! A test binary of its own, so that no other test moves the numbers.

use std::os::fd::{AsRawFd, OwnedFd};

use rbuild_executor::Network;

mod support;

use support::{Sandbox, output};

#[test]
fn the_default_network_comes_up_when_its_descriptors_are_numbered_from_100() {
    let s = Sandbox::new();
    // Every number below 100 taken, so the namespace's own are 100, 101, …
    let mut held: Vec<OwnedFd> = Vec::new();
    loop {
        let fd = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let n = fd.as_raw_fd();
        held.push(fd);
        if n >= 99 {
            break;
        }
    }
    let mut spec = s.spec("ip -o link show tap0 | grep -c UP");
    spec.network = Network::Private;
    let (code, out, err) = output(&spec);
    assert_eq!((code, out.as_str()), (0, "1\n"), "{err}");
    drop(held);
}
