#!/usr/bin/env bash
# The files the differential check's HTTP server serves (run in its empty
# directory): ADD of a URL fetches them. Their Last-Modified, the mtime
# BuildKit gives an ADDed URL, is 2002-05-18.
set -euo pipefail
umask 022
printf 'hello from http\n' >hello.txt
printf '#!/bin/sh\necho script\n' >script.sh
mkdir -p tree/sub && printf 'a\n' >tree/a.txt && printf 'b\n' >tree/sub/b.txt
tar -cf archive.tar -C tree . && gzip -kn archive.tar
rm -r tree
mkdir -p dir && printf 'in a dir\n' >dir/file.txt
find . -exec touch -h -d @1021700000 {} +

# A git repository ADD fetches over smart HTTP (git http-backend as the
# server's CGI, /cgi-bin/git/repo.git), with fixed names and dates, so its
# commit id is the same on every machine.
mkdir -p git cgi-bin
git init -q -b main work
printf 'from git\n' >work/README
mkdir -p work/sub && printf 'deep\n' >work/sub/file.txt
export GIT_AUTHOR_NAME=diffcheck GIT_AUTHOR_EMAIL=diffcheck@localhost GIT_COMMITTER_NAME=diffcheck \
  GIT_COMMITTER_EMAIL=diffcheck@localhost GIT_AUTHOR_DATE=2002-05-18T00:00:00Z GIT_COMMITTER_DATE=2002-05-18T00:00:00Z
git -C work add -A && git -C work commit -q -m one && git -C work tag v1
git clone -q --bare work git/repo.git && rm -rf work
# (Python's CGI server runs it as nobody: the root-owned repository is
# declared safe.)
printf '#!/bin/sh\nexport GIT_PROJECT_ROOT=%s/git GIT_HTTP_EXPORT_ALL=1 GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0=* HOME=/nonexistent\nexec git http-backend\n' "$PWD" >cgi-bin/git
chmod 755 cgi-bin/git
