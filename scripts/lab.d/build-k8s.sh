#!/usr/bin/env bash
# Build Kubernetes v1.20.2 from Debian's `kubernetes` source package with Debian's Go.
# Usage: build-k8s.sh <cache-dir>
# Output: <cache-dir>/k8s/<debian source version>/{linux-amd64,windows-amd64}/ and a .done stamp.
# Prints the output directory on stdout (last line). Everything else goes to stderr.
set -euo pipefail

CACHE_DIR=${1:?usage: build-k8s.sh <cache-dir>}
LINUX_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm)
WIN_CMDS=(kubelet kube-proxy kubectl)
# Go >= 1.18 changed the signature of reflect.mapiterinit: the vendored github.com/modern-go/reflect2 v1.0.1 then
# crashes ("unexpected fault address", SIGSEGV in mapiterinit) whenever json-iterator encodes a map, e.g. in
# `kubeadm init phase upload-config`. v1.0.2 fixed it; Debian's own kubernetes build uses Debian's reflect2 (1.0.2),
# and so does the lab's: its Go files replace the vendored ones.
REFLECT2_PKG=golang-github-modern-go-reflect2-dev
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2

log() { printf '  [build] %s\n' "$*" >&2; }

ensure_deb_src() {
  local src=/etc/apt/sources.list.d/debian.sources dst=/etc/apt/sources.list.d/wkjoin-lab-src.sources
  if apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Version:'; then
    return 0
  fi
  if [[ ! -f $dst ]]; then
    if [[ -f $src ]]; then
      log "adding deb-src entries ($dst)"
      sed 's/^Types:.*$/Types: deb-src/' "$src" >"$dst"
    else
      log "adding deb-src entries from /etc/apt/sources.list"
      grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
        >/etc/apt/sources.list.d/wkjoin-lab-src.list
    fi
  fi
  log "apt-get update (for deb-src)"
  apt-get update -q >&2
}

ensure_deb_src
VERSION=$(apt-cache showsrc kubernetes | sed -n 's/^Version: //p' | sort -V | tail -n1)
[[ -n $VERSION ]] || { log "cannot find the kubernetes source package"; exit 1; }
REFLECT2_VERSION=$(dpkg-query -W -f='${Version}' "$REFLECT2_PKG" 2>/dev/null || true)
if [[ -z $REFLECT2_VERSION || ! -d $REFLECT2_SRC ]]; then
  log "$REFLECT2_PKG is not installed (scripts/lab up installs it)"
  exit 1
fi
# The key names the command set and the replaced reflect2 too, so changing either rebuilds instead of reusing
# an older build.
OUT=$CACHE_DIR/k8s/$VERSION-$(printf '%s ' "${LINUX_CMDS[@]}" "${WIN_CMDS[@]}" "reflect2=$REFLECT2_VERSION" | sha256sum | cut -c1-8)
if [[ -f $OUT/.done ]]; then
  log "cached build found: $OUT"
  echo "$OUT"
  exit 0
fi

SRC_PARENT=$CACHE_DIR/src
mkdir -p "$SRC_PARENT"
TREE=$(find "$SRC_PARENT" -maxdepth 1 -type d -name 'kubernetes-*' | sort | tail -n1)
if [[ -z $TREE || ! -f $SRC_PARENT/.fetched-$VERSION ]]; then
  log "apt-get source kubernetes ($VERSION)"
  rm -rf "${SRC_PARENT:?}"/kubernetes*
  (cd "$SRC_PARENT" && apt-get source -q "kubernetes=$VERSION" >&2)
  touch "$SRC_PARENT/.fetched-$VERSION"
  TREE=$(find "$SRC_PARENT" -maxdepth 1 -type d -name 'kubernetes-*' | sort | tail -n1)
fi
log "source tree: $TREE"

cd "$TREE"
log "vendor/github.com/modern-go/reflect2 <- $REFLECT2_PKG $REFLECT2_VERSION"
rm -f vendor/github.com/modern-go/reflect2/*.go
find "$REFLECT2_SRC" -maxdepth 1 -name '*.go' ! -name '*_test.go' -exec cp {} vendor/github.com/modern-go/reflect2/ \;
mkdir -p .go/src/k8s.io
[[ -L .go/src/k8s.io/kubernetes ]] || ln -s ../../.. .go/src/k8s.io/kubernetes
export GOPATH=$TREE/.go CGO_ENABLED=0 GOFLAGS=-mod=vendor HOME=${HOME:-/root}
export PATH=/usr/lib/go/bin:$PATH

linux_whats=(); for c in "${LINUX_CMDS[@]}"; do linux_whats+=("cmd/$c"); done
win_whats=(); for c in "${WIN_CMDS[@]}"; do win_whats+=("cmd/$c"); done

start=$SECONDS
log "make WHAT=\"${linux_whats[*]}\" (linux/amd64, nice -n 10)"
nice -n 10 make WHAT="${linux_whats[*]}" >&2
log "linux binaries built in $((SECONDS - start))s"
wstart=$SECONDS
log "make WHAT=\"${win_whats[*]}\" KUBE_BUILD_PLATFORMS=windows/amd64 (nice -n 10)"
nice -n 10 make WHAT="${win_whats[*]}" KUBE_BUILD_PLATFORMS=windows/amd64 >&2
log "windows binaries built in $((SECONDS - wstart))s"

tmp=$OUT.tmp
rm -rf "$tmp"
mkdir -p "$tmp/linux-amd64" "$tmp/windows-amd64"
for c in "${LINUX_CMDS[@]}"; do cp "_output/local/bin/linux/amd64/$c" "$tmp/linux-amd64/"; done
for c in "${WIN_CMDS[@]}"; do cp "_output/local/bin/windows/amd64/$c.exe" "$tmp/windows-amd64/"; done
echo "$VERSION" >"$tmp/debian-version"
echo "$((SECONDS - start))" >"$tmp/build-seconds"
touch "$tmp/.done"
rm -rf "$OUT"
mv "$tmp" "$OUT"
log "build done in $((SECONDS - start))s -> $OUT"
echo "$OUT"
