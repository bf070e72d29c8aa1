# Two commands for a fresh machine: `make run` and `make test`. Everything they need is
# installed by the targets below, idempotently.
SHELL := /bin/bash
# npm finds its global npmrc (the machine's CA bundle and registry settings) relative to the
# Node that runs it; pin it to the system npm's own before the project's Node 24 comes first.
NPM_GLOBALCONFIG := $(shell npm config get globalconfig 2>/dev/null)
ifneq ($(NPM_GLOBALCONFIG),)
export npm_config_globalconfig := $(NPM_GLOBALCONFIG)
endif
export PATH := $(CURDIR)/.tools/node/node_modules/.bin:$(CURDIR)/node_modules/.bin:$(CURDIR)/.tools/bin:/usr/local/go/bin:$(PATH)
export NODE_OPTIONS := --experimental-vm-modules --no-warnings=ExperimentalWarning

.PHONY: run test unit lint build typecheck node deps system-deps peers clean image image-oci bench bench-build openclaw soak

run: build
	scripts/run.sh

# Three phases, each run even if one before it failed (scripts/test.sh says why).
test: system-deps build typecheck peers openclaw bench-build
	scripts/test.sh

unit: deps
	jest test/unit

# prettier's format and typescript-eslint's rules (scripts/lint.sh); make test runs it first.
lint: deps
	scripts/lint.sh

# The reliability suite at full size (1,000,000 fuzz cases, a 10-minute soak; SOAK_SECONDS
# and the other sizes in test/reliability/profile.ts override); writes reports/reliability.md.
soak: system-deps build peers
	RELIABILITY_PROFILE=soak jest --maxWorkers=1 test/reliability

# tsc's output is the library; the command users run is its bundle, dist/sidecar.js.
build: deps
	tsc -p tsconfig.build.json
	node scripts/bundle.mjs dist

typecheck: deps
	tsc -p tsconfig.json --noEmit

node:
	scripts/ensure-node.sh

deps: node node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@# Exactly the committed lock (it holds every platform's optional packages), or an error.
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

system-deps:
	scripts/install-debian.sh

# The real OpenClaw gateway for its end-to-end suite: pinned, cached in .cache/openclaw.
openclaw: node
	scripts/install-openclaw.sh

# The performance benchmark (about 13 minutes): writes reports/performance.md and .png.
# Each proxied WebSocket holds two descriptors, so the runner asks for more than 20,000.
bench: system-deps peers bench-build
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); node .run/bench/bench/run.js $(BENCH_ARGS)

bench-build: build
	tsc -p bench/tsconfig.json

# The real peers: the Kubernetes API server, kine, kubectl, Helm 3 and 4, Traefik and
# oauth2-proxy, built from the Go module proxy at pinned versions (once per machine; the
# README says how long a cold build takes).
peers:
	scripts/install-peers.sh

# Needs a Docker engine (none on the project's own test machines).
IMAGE ?= trusted-proxy-sidecar:$(shell node -p 'require("./package.json").version' 2>/dev/null || echo dev)
image:
	docker build -t $(IMAGE) .

# The same image without Docker: an OCI layout in .run/image (umoci; push it with skopeo).
image-oci: system-deps deps
	scripts/build-image-oci.sh .run/image

clean:
	rm -rf dist node_modules .tools .run test-artifacts
