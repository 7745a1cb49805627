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
