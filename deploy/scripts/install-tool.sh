#!/usr/bin/env bash
# Installs one pinned tool and prints its path.
#
#   deploy/scripts/install-tool.sh TOOL VERSION [DEST]
#
# TOOL is kind, kubectl, helm or skaffold. The binary is kept in a cache outside the clone,
# keyed by version ($PERFLAB_CACHE, default ~/.cache/perflab/TOOL-VERSION/TOOL), so a fresh
# clone or a second `make up` reuses it; with DEST it is also copied there (./bin/TOOL-VERSION).
#
# It downloads the official release binary and checks it against the checksum published
# beside it. Where those downloads are unreachable (this project's CI reaches only package
# registries), helm and kind are built from their Go modules at the same version instead.
set -euo pipefail

tool=${1:?usage: install-tool.sh TOOL VERSION [DEST]}
version=${2:?usage: install-tool.sh TOOL VERSION [DEST]}
dest=${3:-}

cache_root=${PERFLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/perflab}
cache_dir="$cache_root/$tool-$version"
bin="$cache_dir/$tool"

log() { echo "install-tool: $*" >&2; }

platform() {
  local os arch
  os=$(uname -s | tr '[:upper:]' '[:lower:]')
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) log "unsupported CPU $(uname -m)"; exit 1 ;;
  esac
  echo "$os $arch"
}

fetch() { # URL FILE
  curl -fsSL --connect-timeout 10 --retry 2 -o "$2" "$1"
}

verify() { # FILE CHECKSUM-URL (the published file starts with the sha256)
  local want got
  want=$(curl -fsSL --connect-timeout 10 --retry 2 "$2" | awk '{print $1; exit}')
  got=$(sha256sum "$1" | awk '{print $1}')
  if [[ -z "$want" || "$want" != "$got" ]]; then
    log "checksum mismatch for $1 (want '$want', got '$got')"
    return 1
  fi
}

download() { # into $tmp/$tool
  local os arch url
  read -r os arch < <(platform)
  case "$tool" in
    kind)
      url="https://github.com/kubernetes-sigs/kind/releases/download/$version/kind-$os-$arch"
      fetch "$url" "$tmp/kind" && verify "$tmp/kind" "$url.sha256sum" ;;
    kubectl)
      url="https://dl.k8s.io/release/$version/bin/$os/$arch/kubectl"
      fetch "$url" "$tmp/kubectl" && verify "$tmp/kubectl" "$url.sha256" ;;
    helm)
      url="https://get.helm.sh/helm-$version-$os-$arch.tar.gz"
      fetch "$url" "$tmp/helm.tgz" && verify "$tmp/helm.tgz" "$url.sha256sum" &&
        tar -xzf "$tmp/helm.tgz" -C "$tmp" --strip-components=1 "$os-$arch/helm" ;;
    skaffold)
      url="https://storage.googleapis.com/skaffold/releases/$version/skaffold-$os-$arch"
      fetch "$url" "$tmp/skaffold" && verify "$tmp/skaffold" "$url.sha256" ;;
    *) log "unknown tool $tool"; exit 2 ;;
  esac
}

go_build() { # into $tmp/$tool, from the tool's Go module at the pinned version
  command -v go >/dev/null || { log "no Go toolchain to build $tool from source"; return 1; }
  local pkg ldflags="-s -w"
  case "$tool" in
    helm)
      pkg="helm.sh/helm/v3/cmd/helm@$version"
      # What helm's own Makefile sets: its version, and the Kubernetes version it assumes
      # when rendering offline (from its client-go v0.X => 1.X).
      local k8s_minor
      k8s_minor=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "helm.sh/helm/v3@$version" |
        sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' | xargs grep -m1 'k8s.io/client-go ' | sed -E 's/.*v0\.([0-9]+)\..*/\1/')
      ldflags+=" -X helm.sh/helm/v3/internal/version.version=$version"
      ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
      ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
      ;;
    kind) pkg="sigs.k8s.io/kind@$version" ;;
    *) log "$tool has no Go-module fallback"; return 1 ;;
  esac
  log "building $pkg with go (the release download was unreachable)"
  (cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install -trimpath -ldflags "$ldflags" "$pkg")
}

if [[ ! -x "$bin" ]]; then
  mkdir -p "$cache_dir"
  tmp=$(mktemp -d "$cache_dir/.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "installing $tool $version into $cache_dir"
  if ! download 2>"$tmp/download.log"; then
    log "download failed: $(tail -n 1 "$tmp/download.log")"
    go_build || { log "could not install $tool $version"; exit 1; }
  fi
  chmod +x "$tmp/$tool"
  mv -f "$tmp/$tool" "$bin"
fi

if [[ -n "$dest" ]]; then
  mkdir -p "$(dirname "$dest")"
  cp -f "$bin" "$dest.tmp" && mv -f "$dest.tmp" "$dest"
  echo "$dest"
else
  echo "$bin"
fi
