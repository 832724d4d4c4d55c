#!/usr/bin/env bash
# Build the lab's container images as OCI image-layout tars from Debian's busybox-static.
# Usage: build-images.sh <out-dir>
#   -> <out-dir>/{pause,webserver,probe}.oci.tar, named wkjoin.local/<name>:1.0
# Nothing is pulled: the single layer is a rootfs holding /bin/busybox plus applet symlinks.
set -euo pipefail

OUT=${1:?usage: build-images.sh <out-dir>}
BUSYBOX=${BUSYBOX:-/bin/busybox}
TAG=1.0
REGISTRY=wkjoin.local

[[ -x $BUSYBOX ]] || { echo "build-images: $BUSYBOX missing (apt-get install busybox-static)" >&2; exit 1; }
if ! "$BUSYBOX" --list | grep -qx httpd; then
  echo "build-images: $BUSYBOX has no httpd applet" >&2; exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# make_rootfs <dir> <image name>
make_rootfs() {
  local root=$1 name=$2 applet
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var/run,www/cgi-bin}
  chmod 1777 "$root/tmp"
  cp "$BUSYBOX" "$root/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [[ $applet == busybox || $applet == '[[' || $applet == '[' ]] && continue
    ln -s busybox "$root/bin/$applet"
  done
  ln -s busybox "$root/bin/["
  ln -s busybox "$root/bin/[["
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf '%s\n' "wkjoin-lab $name image (busybox $("$BUSYBOX" | head -n1 | awk '{print $2}'))" >"$root/etc/wkjoin-lab-image"
  if [[ $name == webserver ]]; then
    # busybox httpd runs /cgi-bin/index.cgi for "/" when there is no index.html.
    cat >"$root/www/cgi-bin/index.cgi" <<'CGI'
#!/bin/sh
# wkjoin lab webserver: tells who served the request and who asked.
echo "Content-Type: text/plain"
echo ""
echo "hostname: $(hostname)"
addr=${REMOTE_ADDR#[}; addr=${addr%]}; addr=${addr#::ffff:}
echo "client: ${addr}:${REMOTE_PORT}"
echo "server: $(hostname -i 2>/dev/null)"
echo "path: ${REQUEST_URI}"
CGI
    chmod 755 "$root/www/cgi-bin/index.cgi"
    echo ok >"$root/www/healthz"
  fi
}

# build_image <name> <command json array> (image Cmd, no Entrypoint: `kubectl run ... -- cmd` replaces it)
build_image() {
  local name=$1 entry=$2 d=$WORK/$1
  local root=$d/rootfs layout=$d/layout
  mkdir -p "$root" "$layout/blobs/sha256"
  make_rootfs "$root" "$name"
  # reproducible layer
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$d/layer.tar" .
  local diff_id; diff_id=$(sha "$d/layer.tar")
  gzip -n -9 -c "$d/layer.tar" >"$d/layer.tar.gz"
  local layer_digest layer_size
  layer_digest=$(sha "$d/layer.tar.gz"); layer_size=$(size "$d/layer.tar.gz")
  mv "$d/layer.tar.gz" "$layout/blobs/sha256/$layer_digest"

  jq -cn --argjson entry "$entry" --arg diff "sha256:$diff_id" --arg name "$name" '{
      architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z",
      config: {Cmd: $entry, Env: ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"], WorkingDir: "/",
               Labels: {"org.opencontainers.image.title": ("wkjoin lab " + $name)}},
      rootfs: {type: "layers", diff_ids: [$diff]},
      history: [{created: "1970-01-01T00:00:00Z", created_by: "scripts/lab.d/build-images.sh (busybox-static)"}]
    }' >"$d/config.json"
  local cfg_digest cfg_size
  cfg_digest=$(sha "$d/config.json"); cfg_size=$(size "$d/config.json")
  cp "$d/config.json" "$layout/blobs/sha256/$cfg_digest"

  jq -cn --arg cd "sha256:$cfg_digest" --argjson cs "$cfg_size" \
         --arg ld "sha256:$layer_digest" --argjson ls "$layer_size" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]
    }' >"$d/manifest.json"
  local man_digest man_size
  man_digest=$(sha "$d/manifest.json"); man_size=$(size "$d/manifest.json")
  cp "$d/manifest.json" "$layout/blobs/sha256/$man_digest"

  jq -cn --arg md "sha256:$man_digest" --argjson ms "$man_size" \
         --arg ref "$REGISTRY/$name:$TAG" --arg tag "$TAG" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $md, size: $ms,
                   platform: {architecture: "amd64", os: "linux"},
                   annotations: {"io.containerd.image.name": $ref, "org.opencontainers.image.ref.name": $tag}}]
    }' >"$layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$layout" \
      -cf "$OUT/$name.oci.tar.tmp" oci-layout index.json blobs
  mv "$OUT/$name.oci.tar.tmp" "$OUT/$name.oci.tar"
  echo "  [images] $REGISTRY/$name:$TAG -> $OUT/$name.oci.tar (manifest sha256:$man_digest)" >&2
}

loop='trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'
build_image pause "$(jq -cn --arg s "$loop" '["/bin/sh","-c",$s]')"
build_image webserver '["/bin/httpd","-f","-v","-p","80","-h","/www"]'
build_image probe "$(jq -cn --arg s "$loop" '["/bin/sh","-c",$s]')"
