# Sourced: buildkit_archive prints the path of BuildKit v0.11.6's release
# archive, or nothing. It is the one file the peers' scripts cannot get from
# a package registry, and it is not kept in the repository (a 33 MB binary
# release of another project): $BUILDKIT_ARCHIVE if set, else the project's
# shared folder beside the clone, else where that folder sits on the machines
# this project is built on.
buildkit_archive() {
  local repo dir
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [ -n "${BUILDKIT_ARCHIVE:-}" ]; then echo "$BUILDKIT_ARCHIVE"; return; fi
  for dir in "$repo/../shared/peers" /work/shared/peers; do
    [ -r "$dir/buildkit-v0.11.6-linux-amd64.tar.zst" ] && { echo "$dir/buildkit-v0.11.6-linux-amd64.tar.zst"; return; }
  done
}
