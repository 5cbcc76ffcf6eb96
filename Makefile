# voicegw: `make test` runs the whole suite (what .ci/run runs).
.PHONY: build test fuzz bench serve check replicas

build:
	go build -o bin/voicegw ./cmd/voicegw

test:
	scripts/test.sh

# The replica test at length: three serve processes on one Vault behind
# HAProxy, 30 s of load with a replica killed halfway (make test runs a
# 4 s version of it).
replicas:
	scripts/install-haproxy.sh
	VOICEGW_VAULT_BIN="$$(scripts/vault-build.sh)" VOICEGW_REPLICAS_LONG=1 \
		go test -count=1 -v -timeout 10m -run '^TestReplicasBehindHAProxy$$' ./cmd/voicegw/

fuzz:
	FUZZTIME=$${FUZZTIME:-60s} scripts/fuzz.sh

bench:
	go test -run '^$$' -bench . -benchmem ./...

serve:
	go run ./cmd/voicegw serve -c config.example.yaml

check:
	go run ./cmd/voicegw check -c config.example.yaml
