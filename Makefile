# Two commands for a fresh machine: `make run` and `make test`. Everything they need is
# installed by the targets below, idempotently.
SHELL := /bin/bash
export PATH := $(CURDIR)/.tools/node/node_modules/.bin:$(CURDIR)/node_modules/.bin:$(PATH)
export NODE_OPTIONS := --experimental-vm-modules --no-warnings=ExperimentalWarning

.PHONY: run test unit build typecheck node deps system-deps clean

run: build
	scripts/run.sh

test: system-deps build typecheck
	jest

unit: deps
	jest test/unit

build: deps
	tsc -p tsconfig.build.json

typecheck: deps
	tsc -p tsconfig.json --noEmit

node:
	scripts/ensure-node.sh

deps: node node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@# npm ci refuses a lock that lacks optional binaries for other platforms (the registry
	@# mirror here lacks some); npm install honours the committed lock all the same.
	npm install --no-save --no-audit --no-fund --loglevel=error
	touch $@

system-deps:
	scripts/install-debian.sh

clean:
	rm -rf dist node_modules .tools .run test-artifacts
