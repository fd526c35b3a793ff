# Drover: `make` builds, `make run` starts the server on its defaults, `make test` runs every test.
# Each target does its own set-up, so the two commands work on a fresh clone.

NODE_BIN := node_modules/.bin
GENERATED := shared/src/gen/drover/v1/drover.ts
PROTOS := $(wildcard proto/drover/v1/*.proto) $(wildcard proto/grpc/health/v1/*.proto) proto/buf.yaml proto/buf.gen.yaml
INSTALLED := node_modules/.install-stamp

.PHONY: all build run test crash-test lint clean

all: build

# better-sqlite3 compiles from source here (about 2 minutes the first time). Not `npm ci`:
# the registry this runs against lacks buf's binaries for other platforms, so the lock file
# cannot list them and `npm ci` refuses it as out of sync; `npm install --no-save` installs
# exactly the locked versions and leaves the lock file alone.
$(INSTALLED): package.json package-lock.json shared/package.json server/package.json cli/package.json
	npm install --no-save --no-audit --no-fund
	@touch $@

# The generated TypeScript, and the descriptor set the server's reflection serves.
$(GENERATED): $(INSTALLED) $(PROTOS)
	cd proto && ../$(NODE_BIN)/buf lint && ../$(NODE_BIN)/buf generate && ../$(NODE_BIN)/buf build -o ../shared/src/gen/drover.binpb

build: $(GENERATED)
	$(NODE_BIN)/tsc -b shared server cli

run: build
	bin/server

test: build
	npm test

# The randomized SIGKILL loop, run long: CRASH_ITERATIONS kills at random moments of each kind
# (a rolling update, a rollback, a cancel, real processes; make test runs 2 of each), about
# 10 minutes on 2 cores. The seed is printed; replay a failure with DROVER_CRASH_SEED=<seed>.
CRASH_ITERATIONS ?= 25
crash-test: build
	DROVER_CRASH_ITERATIONS=$(CRASH_ITERATIONS) DROVER_CRASH_SEED=$(DROVER_CRASH_SEED) node --test server/dist/test/crash.test.js

# The benchmark (about 6 minutes on 2 cores): real servers on temporary data dirs; prints one
# table and writes bench-results.json. DROVER_BENCH_SMOKE=1 runs tiny sizes; DROVER_BENCH_PROFILE=dir
# profiles every server child; DROVER_BENCH_ONLY=plan,dispatch,… runs some figures. See BENCHMARKS.md.
.PHONY: bench
bench: build
	node server/dist/bench/bench.js

lint: $(INSTALLED)
	cd proto && ../$(NODE_BIN)/buf lint

clean:
	rm -rf shared/dist server/dist cli/dist shared/src/gen shared/tsconfig.tsbuildinfo server/tsconfig.tsbuildinfo cli/tsconfig.tsbuildinfo
