#!/usr/bin/env bash
# Builds the pinned HashiCorp Vault release (scripts/vault/go.mod) from the Go
# module proxy into a cache directory outside the repository, once. Prints the
# path of the binary. The first build on a new machine takes about 15 minutes
# and about 8 GB of module and build cache; later calls return at once.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(awk '$1=="require" && $2=="github.com/hashicorp/vault" {print $3; exit} $1=="github.com/hashicorp/vault" {print $2; exit}' "$here/vault/go.mod")"
cache="${VOICEGW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/voicegw}"
bin="$cache/vault-$version/vault"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
mkdir -p "$(dirname "$bin")"
echo "vault-build: building Vault $version into $bin (first time: about 15 minutes)" >&2
start=$(date +%s)
( cd "$here/vault" && go build -trimpath -ldflags='-s -w' -o "$bin.tmp" github.com/hashicorp/vault ) &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 30
  kill -0 "$pid" 2>/dev/null && echo "vault-build: still building ($(( $(date +%s) - start ))s)" >&2
done
wait "$pid"
mv "$bin.tmp" "$bin"
echo "vault-build: done in $(( $(date +%s) - start ))s" >&2
echo "$bin"
