# Developer shortcuts. The test command of the project is ./scripts/test.sh (see its --help);
# `make test` runs it. ARGS is passed through, e.g. make test ARGS='-run TestPublish ./messaging/'.
GO ?= go
ARGS ?=

.PHONY: test bench poller-bench vet fmt

test:
	./scripts/test.sh $(ARGS)

bench:
	$(GO) run ./cmd/kombu bench $(ARGS)

poller-bench:
	$(GO) run ./cmd/kombu poller-bench $(ARGS)

vet:
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	GOOS=freebsd $(GO) vet ./...

# Same file set as the gofmt check in scripts/test.sh (testdata, vendor and hidden dirs excluded).
fmt:
	find . \( -name testdata -o -name vendor -o -name '.*' ! -name . \) -prune -o -name '*.go' -print | xargs gofmt -w
