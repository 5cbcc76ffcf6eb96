# voicegw: `make test` runs the whole suite (what .ci/run runs).
.PHONY: build test fuzz bench serve check

build:
	go build -o bin/voicegw ./cmd/voicegw

test:
	scripts/test.sh

fuzz:
	FUZZTIME=$${FUZZTIME:-60s} scripts/fuzz.sh

bench:
	go test -run '^$$' -bench . -benchmem ./...

serve:
	go run ./cmd/voicegw serve -c config.example.yaml

check:
	go run ./cmd/voicegw check -c config.example.yaml
