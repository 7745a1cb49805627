#!/usr/bin/env bash
# Installs what the test suite and the differential check need on a fresh
# Debian 12 machine, as root (scripts/test.sh and .ci/run run it first):
# Debian packages, /dev/net/tun, qemu's binfmt_misc handlers, and the
# rootless test user. Does nothing
# that is already done.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "scripts/install-deps.sh: run as root" >&2; exit 1; }

# Test dependencies: a static busybox to make base images from, the CNCF
# registry server the tests start on 127.0.0.1, the OCI consumers that check
# rbuild's output, and the external runtimes the executor is tested with.
need=()
for c in busybox:busybox-static docker-registry:docker-registry skopeo:skopeo umoci:umoci \
         runc:runc crun:crun jq:jq htpasswd:apache2-utils openssl:openssl git:git podman:podman \
         newuidmap:uidmap slirp4netns:slirp4netns ssh-agent:openssh-client \
         zstd:zstd curl:curl python3:python3; do
  command -v "${c%%:*}" >/dev/null || need+=("${c##*:}")
done
# libseccomp's headers and library, which the executor links; a static libc,
# with which the escape tests compile their probe.
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(gcc libc6-dev)
# Foreign-platform RUN: qemu-user registered in binfmt_misc with the F
# flag (Debian's qemu-user-static and binfmt-support), and the cross
# compiler the tests make their tiny arm64 static binary with.
[ -e /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The sandbox's default network (slirp4netns) makes a tap device: rootless
# mode needs /dev/net/tun as Debian's udev rules make it (mode 0666), also
# on machines without udev.
if [[ ! -c /dev/net/tun ]]; then
  mkdir -p /dev/net && mknod -m 0666 /dev/net/tun c 10 200
fi
chmod 0666 /dev/net/tun

# binfmt_misc mounted (a container may start without it) and qemu's
# handlers enabled: binfmt-support registers them only where it is mounted.
# Where that is not allowed, say so and go on: only the foreign-RUN test
# then fails, with rbuild's own error naming the fix.
if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    echo "install-deps: cannot mount binfmt_misc: RUN for arm64 will not run here" >&2
fi
if [[ -e /proc/sys/fs/binfmt_misc/register && ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
  update-binfmts --enable qemu-aarch64 ||
    echo "install-deps: cannot register qemu-aarch64: RUN for arm64 will not run here" >&2
fi

# An unprivileged user with subordinate ids, for the rootless-mode tests.
if ! id rbuild-rootless >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin rbuild-rootless
fi
grep -q '^rbuild-rootless:' /etc/subuid || usermod --add-subuids 200000-265535 rbuild-rootless
grep -q '^rbuild-rootless:' /etc/subgid || usermod --add-subgids 200000-265535 rbuild-rootless
