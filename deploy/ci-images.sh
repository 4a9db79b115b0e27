#!/usr/bin/env bash
# Builds local stand-ins, from Debian's packages, for the upstream images docker-compose.yml and the Dockerfile use,
# tagged with the upstream names, so the unchanged compose file runs where Docker Hub cannot be reached (CI).
#
#   deploy/ci-images.sh          # needs a running Docker engine, debootstrap, and root (debootstrap, chroot)
#
# Users never need this: on a machine that reaches Docker Hub, compose pulls the real images. A tag that already
# holds an image not built here (a real upstream image) is left alone. Work already done is skipped: the base image
# is tagged with a hash of its inputs, each stand-in is labelled with a hash of its Dockerfile and base.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
LABEL=invoice-pipeline.ci-standin
RECIPES=deploy/ci-images

log() { printf 'ci-images: %s\n' "$*" >&2; }

# The upstream repository each recipe stands in for; the tags come from the files that use them.
recipe_for() {
  case "${1%%:*}" in
    python) echo python ;;
    rabbitmq) echo rabbitmq ;;
    redis) echo redis ;;
    prom/prometheus) echo prometheus ;;
    nginx) echo nginx ;;
    *) echo "" ;;
  esac
}

upstream_images() {
  sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile
  sed -n 's/^ *image: *\([^ #]*\).*/\1/p' docker-compose.yml
}

# --- the base: debootstrap minbase + the machine's CA certificates (HTTPS from containers goes through a proxy) ---
certs=(/usr/local/share/ca-certificates/*.crt)
[[ -e ${certs[0]} ]] || certs=()
base_inputs() {
  printf 'suite=%s mirror=%s recipe=4\n' "$SUITE" "$MIRROR"
  for cert in "${certs[@]}"; do sha256sum "$cert" | cut -d' ' -f1; done
}
BASE="invoice-pipeline-ci/debian:$SUITE-$(base_inputs | sha256sum | cut -c1-12)"

if docker image inspect "$BASE" >/dev/null 2>&1; then
  log "base $BASE: up to date"
else
  command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
  rootfs=$(mktemp -d /tmp/ci-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  log "base $BASE: debootstrap $SUITE (about 45 s)"
  start=$SECONDS
  # Like Debian's own slim images: no documentation or translations, and no services started by package scripts.
  mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
    'path-exclude /usr/share/lintian/*' >"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$MIRROR" >/dev/null
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d" && chmod +x "$rootfs/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90slim"
  if ((${#certs[@]})); then
    cp "${certs[@]}" "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  fi
  # debootstrap's first stage unpacks without those exclusions: remove what they would have kept out.
  rm -rf "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*
  find "$rootfs/usr/share/doc" -type f ! -name copyright -delete
  tar -C "$rootfs" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  log "base $BASE: built in $((SECONDS - start)) s"
fi

# --- one stand-in per upstream image ---
for image in $(upstream_images | sort -u); do
  recipe=$(recipe_for "$image")
  if [[ -z $recipe ]]; then
    [[ $image == docspace-invoice-pipeline* ]] || log "$image: no stand-in (not started by CI)"
    continue
  fi
  inputs=$( (echo "$BASE"; cat "$RECIPES/$recipe.Dockerfile") | sha256sum | cut -c1-12)
  current=$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$image" 2>/dev/null || echo absent)
  if [[ $current == "$inputs" ]]; then
    log "$image: up to date"
    continue
  fi
  if [[ $current != absent && -z $current ]]; then
    log "$image: a real upstream image is already here; left alone"
    continue
  fi
  log "$image: building from $RECIPES/$recipe.Dockerfile"
  start=$SECONDS
  if ! out=$(docker build -q --build-arg "BASE=$BASE" --label "$LABEL=$inputs" -t "$image" \
    -f "$RECIPES/$recipe.Dockerfile" "$RECIPES" 2>&1); then
    printf '%s\n' "$out" >&2
    log "$image: build failed"
    exit 1
  fi
  log "$image: built in $((SECONDS - start)) s"
done

# Stand-ins this script replaced are left untagged: drop them (only ours, by their label).
# Tidying only: another prune running on the same engine (a second CI job) must not fail the images just built.
docker image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || log "old stand-ins not pruned this time (the engine was busy)"
