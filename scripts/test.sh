#!/usr/bin/env bash
# The whole test suite, as `make test` and .ci/run run it on a fresh clone:
# formatting and vet, the pinned Vault dev server build (cached outside the
# repo), every Go test with the race detector, short fuzz runs, the example
# scenarios and the public acceptance sample when it is next to the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

step() { printf '\n== %s\n' "$*"; }

step "gofmt and go vet"
unformatted=$(gofmt -l cmd gateway bench 2>/dev/null || true)
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi
go vet ./...

step "Vault dev server binary (first build on a new machine: about 15 minutes)"
VOICEGW_VAULT_BIN="$(scripts/vault-build.sh)"
export VOICEGW_VAULT_BIN
echo "vault: $VOICEGW_VAULT_BIN"

step "headless Chromium for the browser tests (Debian chromium, chromium-driver)"
scripts/install-chromium.sh

step "HAProxy for the replica test (Debian haproxy)"
scripts/install-haproxy.sh

step "MCP TypeScript SDK for the MCP end-to-end test (npm, cached outside the repo)"
scripts/install-mcp-client.sh >/dev/null

step "go test -race ./..."
go test -count=1 -race -timeout 20m ./...

step "benchmarks (short runs; make bench runs every benchmark)"
go test -run '^$' -bench 'BenchmarkTurn|BenchmarkDirectUpstream|BenchmarkVerify|BenchmarkDecode|BenchmarkEncode' -benchmem -benchtime 500x ./gateway/alexa/
go test -run '^$' -bench 'BenchmarkEngine' -benchmem -benchtime 500x ./gateway/engine/
go test -run '^$' -bench 'BenchmarkLoad' -benchmem -benchtime 1x ./gateway/config/

step "fuzz targets (short runs; make fuzz runs them longer)"
FUZZTIME="${FUZZTIME:-5s}" scripts/fuzz.sh

step "example scenarios (voicegw test -c config.example.yaml, -c examples/shop/config.yaml)"
go run ./cmd/voicegw test -c config.example.yaml
go run ./cmd/voicegw test -c examples/shop/config.yaml

if [ -x "$root/../shared/acceptance/run.sh" ]; then
  step "public acceptance sample"
  "$root/../shared/acceptance/run.sh" "$root"
fi
