#!/usr/bin/env bash
# A CI job written for the docker CLI, run unchanged with `docker` being
# rbuild (tests/e2e/docker_ci.rs puts a `docker` symlink to rbuild first
# on PATH): build with labels and build args, tag by id, push, remove and
# pull again, run with mounts and limits, list. Needs REGISTRY (host:port
# of a registry) and a base image `busybox`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
image="$REGISTRY/ci/app"
version=1.2.3

docker build --progress plain \
  --label org.example.ci=true \
  --build-arg VERSION="$version" \
  -t app:ci "$here/app"
id=$(docker build -q --label org.example.ci=true --build-arg VERSION="$version" "$here/app")
docker tag "$id" "$image:$version"
docker tag "$id" "$image:latest"
docker push "$image:$version"
docker push "$image:latest"

test "$(docker inspect -f '{{.Id}}' app:ci)" = "$id"
test "$(docker inspect -f '{{index .Config.Labels "org.example.ci"}}' "$image:$version")" = true
test "$(docker inspect -f '{{index .Config.Labels "org.opencontainers.image.version"}}' app:ci)" = "$version"

docker rmi "$image:$version"
docker pull "$image:$version"
test "$(docker run --rm "$image:$version")" = "hello from $version"

mkdir "$work/data"
echo input > "$work/data/in"
out=$(docker run --rm -v "$work/data:/data:ro" --tmpfs /scratch --read-only \
  --memory 64m --pids-limit 32 -e MODE=ci "$image:$version" \
  sh -c 'cat /data/in; echo "$MODE" > /scratch/m; cat /scratch/m; touch /ro 2>/dev/null || echo read-only')
test "$out" = "$(printf 'input\nci\nread-only')"

docker images --format '{{.Repository}}:{{.Tag}}' | grep -qx "$image:$version"
echo "docker-ci: ok"
