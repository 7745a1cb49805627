#!/usr/bin/env bash
# Makes the differential check's base images by hand (umoci, not rbuild, so
# neither engine under test made them) and pushes them to REGISTRY:
#   busybox   Debian's static busybox in /bin, applets as symlinks, users
#             and groups whose ids differ (a named user's primary gid is not
#             its uid), a hard-linked pair and a symlinked directory.
#   usrmerge  the same tree with merged /usr: /bin -> usr/bin, /sbin ->
#             usr/sbin, /lib -> usr/lib, as Debian 12 and most bases are.
#   layered   busybox's layer and four more (tars made here): whiteouts
#             of a file and of a directory, an opaque directory, a
#             directory replaced by a file, and a tree with hard links and
#             a symlinked directory (what RUN and COPY see of a base's
#             layers, unpacked by each engine).
# All have /dev, /proc, /sys and empty /etc/hosts, /etc/resolv.conf and
# /etc/hostname, as real bases do, so neither engine has to make mount
# points. Every file's mtime is 2000-01-01 (RUN and COPY results are later).
#   bench/diffcheck/bases.sh WORKDIR REGISTRY
set -euo pipefail
WORK=$1 REG=$2
mkdir -p "$WORK"

# skeleton ROOT BINDIR: the common tree, busybox and its applets in BINDIR.
skeleton() {
  local rf=$1 bin=$2
  mkdir -p "$rf"/{etc,root,tmp,var/log,home/alice,usr/local/bin,usr/share/doc,dev,proc,sys,opt/real/sub} "$rf/$bin"
  cp "$(command -v busybox)" "$rf/$bin/busybox"
  for a in $("$rf/$bin/busybox" --list); do
    [ -e "$rf/$bin/$a" ] || ln -s busybox "$rf/$bin/$a"
  done
  cat >"$rf/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
alice:x:1000:1500:Alice:/home/alice:/bin/sh
bob:x:1001:1001:Bob:/home/bob:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$rf/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
staff:x:1500:alice
bob:x:1001:
devs:x:2000:alice,bob
nogroup:x:65534:
EOF
  : >"$rf/etc/hosts"; : >"$rf/etc/resolv.conf"; : >"$rf/etc/hostname"
  chmod 1777 "$rf/tmp"
  chown 1000:1500 "$rf/home/alice"
  chmod 0750 "$rf/home/alice"
  echo shared >"$rf/opt/real/data"
  ln "$rf/opt/real/data" "$rf/opt/real/data.hard"
  echo deep >"$rf/opt/real/sub/deep.txt"
  ln -s real "$rf/opt/link"
  ln -s /opt/real/data "$rf/opt/abs-link"
  find "$rf" -exec touch -h -d @946684800 {} +
}

# layout ROOT NAME: an OCI layout at $WORK/oci-NAME whose image "t" is one
# layer of ROOT.
layout() {
  local lay=$WORK/oci-$2
  umoci init --layout "$lay"
  umoci new --image "$lay:t"
  umoci insert --image "$lay:t" "$1" / >/dev/null
}

# push NAME: the config, then the image pushed as REGISTRY/NAME:latest.
push() {
  local name=$1 lay=$WORK/oci-$1
  umoci config --image "$lay:t" --config.cmd=/bin/sh \
    --config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --architecture=amd64 --os=linux --history.created_by="diffcheck base $name"
  skopeo copy --quiet --dest-tls-verify=false "oci:$lay:t" "docker://$REG/$name:latest"
}

skeleton "$WORK/busybox" bin
mkdir -p "$WORK/busybox"/{sbin,usr/bin,usr/sbin,lib}
find "$WORK/busybox" -exec touch -h -d @946684800 {} +
layout "$WORK/busybox" busybox
push busybox

skeleton "$WORK/usrmerge" usr/bin
mkdir -p "$WORK/usrmerge"/usr/{sbin,lib/os}
echo 'ID=diffcheck' >"$WORK/usrmerge/usr/lib/os-release"
ln -s usr/bin "$WORK/usrmerge/bin"
ln -s usr/sbin "$WORK/usrmerge/sbin"
ln -s usr/lib "$WORK/usrmerge/lib"
find "$WORK/usrmerge" -exec touch -h -d @946684800 {} +
layout "$WORK/usrmerge" usrmerge
push usrmerge

# The layered base's upper layers are tars made here (umoci insert ends a
# layer of one file without the tar's padding), added as they are.
layout "$WORK/busybox" layered
# add_layer DIR PATH…: a layer of PATH… under DIR, numeric owners, sorted.
add_layer() {
  local dir=$1
  shift
  find "$dir" -exec touch -h -d @946684800 {} +
  tar --numeric-owner --sort=name -cf "$dir.tar" -C "$dir" "$@"
  umoci raw add-layer --image "$WORK/oci-layered:t" "$dir.tar" >/dev/null
}
mkdir -p "$WORK/l2/etc" "$WORK/l2/usr/share" "$WORK/l3/opt/real" "$WORK/l4/home" "$WORK/l5/srv/data/v1"
: >"$WORK/l2/etc/.wh.hostname"; : >"$WORK/l2/usr/share/.wh.doc"
add_layer "$WORK/l2" etc usr
: >"$WORK/l3/opt/real/.wh..wh..opq"; echo fresh >"$WORK/l3/opt/real/fresh.txt"
add_layer "$WORK/l3" opt
echo "now a file" >"$WORK/l4/home/alice"; chown 1000:1500 "$WORK/l4/home/alice"
add_layer "$WORK/l4" home
echo one >"$WORK/l5/srv/data/v1/one"
ln "$WORK/l5/srv/data/v1/one" "$WORK/l5/srv/data/v1/one.hard"
ln -s v1 "$WORK/l5/srv/data/current"
add_layer "$WORK/l5" srv
push layered
