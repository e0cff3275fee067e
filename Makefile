# The two commands: `make run` (the product, locally) and `make test` (the whole suite).
# Each creates or updates the virtual environment it needs first. `make test-unit` is the fast loop.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REQUIREMENTS := requirements.txt requirements-dev.txt constraints.txt layers/common/requirements.txt \
	layers/common/requirements-onnx.txt layers/common/pyproject.toml
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# This machine's Node 20 works with the pinned jsii; its end-of-life banner would fill every run's output.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONUNBUFFERED := 1
# Many container images set PYTHONDONTWRITEBYTECODE. Then no process keeps the bytecode it compiles, and
# each of a test run's Python processes (pytest's workers, every stack and CLI it starts) compiles every
# module it imports, pytest's assertion rewriting of the ~500 test modules included: collecting the suite
# took 12.7 CPU seconds a process with it, 7.4 without. Bytecode lands in __pycache__/ (ignored by git).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: docs docs-serve figures run test test-durations test-unit test-integration test-workflow test-e2e test-infra bench eval backfill reconcile migrate lint synth layer clip-model deploy clean venv openapi

venv: $(STAMP)

# uv (pinned in constraints.txt, installed by pip first) installs the same pins as pip would, downloading
# in parallel: 25 s against pip's 94 s for a fresh venv on this 2-core machine under load. Both run as
# `python -m`, so a venv copied from elsewhere (whose scripts name another interpreter) installs into
# itself. uv reads no pip configuration, so pip's find-links (PIP_FIND_LINKS, else pip's config: where a
# machine keeps wheels such as a CPU-only torch) are passed on. Neither compiles bytecode at install:
# Python compiles a module when it is first imported and keeps it (see PYTHONDONTWRITEBYTECODE below), and
# a run imports about a fifth of the venv's 24,000 modules. Compiling them all (torch, transformers, the
# SDKs' type modules) took 78 CPU seconds, about 40 s of a fresh clone's install on 2 cores.
# pip's extra indexes are passed on too, all indexes weighed alike as pip weighs them (uv would otherwise
# take a package only from the first index holding it, even without the pinned version), and if uv fails (a machine it cannot reach an index from), pip
# installs the same pins: slower, never a failed install that pip would have made.
$(STAMP): $(REQUIREMENTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt uv
	links="$${PIP_FIND_LINKS:-$$($(BIN)/python -m pip config get global.find-links 2>/dev/null)}"; \
	indexes="$${PIP_EXTRA_INDEX_URL:-$$($(BIN)/python -m pip config get global.extra-index-url 2>/dev/null)}"; \
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --index-strategy unsafe-best-match \
		$$(for d in $$links; do printf -- '--find-links %s ' "$$d"; done) \
		$$(for u in $$indexes; do printf -- '--extra-index-url %s ' "$$u"; done) \
		-c constraints.txt -r requirements-dev.txt \
	|| { echo "uv could not install the pins; pip installs them instead (slower)"; \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -c constraints.txt -r requirements-dev.txt; }
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --no-deps -e layers/common
	@touch $(STAMP)

run: $(STAMP)  ## Start the local stack (API on http://127.0.0.1:8000); Ctrl-C stops it
	$(BIN)/python -m local

# Tests by tier, each a folder of tests/: unit (no stack), integration (the local engines: one local
# stack per session), workflow (state machines on moto), e2e (`python -m local` as a process), infra
# (the synthesized CDK template). Parallel on TEST_WORKERS processes (pytest-xdist), each with its own
# stack; a module runs whole on one worker, in file order (tests/conftest.py: pytest_xdist_make_scheduler).
# Four workers on 2 cores: the tests wait too (stacks starting, polls, HTTP round trips), and fewer left
# CPU idle. A fresh clone's `make test` here, back to back on an idle machine: 602 s with 2 workers,
# 497 s with 3, 469 s with 4 (that run caught a race in the kill test, since fixed: local/snapshot.py).
TEST_WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest
PARALLEL := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder
# The AWS calls each worker's stack recorded (a JSON file per worker), read by the permission tests, and
# the roles' grants of the stack the infrastructure tests synthesized, which they read instead of synthesizing it again.
RECORDED_CALLS := build/test-recorded-calls

test: $(STAMP)  ## Run the whole test suite: every tier in parallel, then the permission tests over every call recorded (PYTEST_ARGS=-x adds options)
	rm -rf $(RECORDED_CALLS)
	LOCAL_RECORDED_CALLS=$(RECORDED_CALLS) $(PYTEST) $(PARALLEL) $(PYTEST_ARGS)
	LOCAL_RECORDED_CALLS=$(RECORDED_CALLS) LOCAL_GRANTS_FROM_THIS_RUN=1 $(PYTEST) $(UNIT_PLUGINS_OFF) -m after_recording tests/infra

test-durations:  ## After `make test`: keep its seconds per module as the order the next runs hand work out in (tests/scheduling.py)
	cp build/test-durations.json tests/durations.json

# The unit tier and the permission step use neither Hypothesis nor Schemathesis nor anyio: their pytest
# plugins, loaded by the controller and by each worker, are about 1.6 s of CPU per process there (1.2 s of
# the permission step's serial 5.3 s).
UNIT_PLUGINS_OFF := -p no:schemathesis -p no:hypothesispytest -p no:anyio

test-unit: $(STAMP)  ## Run the unit tests (no local stack; under a minute): the edit-test loop
	$(PYTEST) $(PARALLEL) $(UNIT_PLUGINS_OFF) tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)  ## Run the integration tests against the local engines
	$(PYTEST) $(PARALLEL) tests/integration $(PYTEST_ARGS)

test-workflow: $(STAMP)  ## Run the workflow tests (state machines on moto's Step Functions)
	$(PYTEST) $(PARALLEL) tests/workflow $(PYTEST_ARGS)

test-e2e: $(STAMP)  ## Run the end-to-end tests (`python -m local` as a separate process)
	$(PYTEST) $(PARALLEL) tests/e2e $(PYTEST_ARGS)

test-infra: $(STAMP)  ## Run the infrastructure tests on the synthesized CDK template (the permission tests need `make test`)
	$(PYTEST) $(PARALLEL) tests/infra $(PYTEST_ARGS)

bench: $(STAMP)  ## Run every benchmark in bench/ (BENCH_ARGS=name runs one); prints one table, records each under bench/records/ and renders the docs' figures from them
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(MAKE) --no-print-directory figures

eval: $(STAMP)  ## Run the quality evaluations (phrases, duplicate detection; about two minutes): JSON under evaluation/results/, the docs' figures rendered from it
	$(BIN)/python -m evaluation.results
	$(MAKE) --no-print-directory figures

# Every measured table and quoted figure in README.md and docs/ is rendered from a result file; the
# tests (test_bench_records, test_bench_goals, test_bench_prose, test_evaluation_results) fail when a
# page disagrees with its file. The goals and the quoted figures read the others' files: they come last.
FIGURE_RENDERERS := bench.records bench.migration_report bench.verification_report bench.gpu_report evaluation.results bench.goals bench.prose

figures: $(STAMP)  ## Render every measured table and figure in README.md and docs/ from the result files (bench/records, bench/gpu, evaluation/results)
	@for renderer in $(FIGURE_RENDERERS); do $(BIN)/python -m $$renderer --write-readme || exit 1; done

# A client of the running local stack: its endpoints from the settings `make run` reads (LOCAL_HOST,
# LOCAL_MOTO_PORT, LOCAL_OPENSEARCH_PORT; local/endpoints.py), never ports written here.
LOCAL_CLIENT := $(BIN)/python -m local.endpoints
backfill: $(STAMP)  ## Index images already in a storefront bucket of the running local stack: make backfill WEBSITE=alya
	$(LOCAL_CLIENT) $(BIN)/python -m listing_vision.jewelry.backfill --website $(or $(WEBSITE),alya) --via-lambda dedupe-backfill

reconcile: $(STAMP)  ## Compare and repair the catalogue's photos, records and vectors on the running local stack: make reconcile [ARGS=--dry-run]
	$(LOCAL_CLIENT) $(BIN)/python -m listing_vision.jewelry.reconcile --via-lambda dedupe-reconcile $(ARGS)

migrate: $(STAMP)  ## Run a migration operation against the running local stack: make migrate ARGS="coverage --sample 100"
	$(LOCAL_CLIENT) $(BIN)/python -m listing_vision.realestate.migrate $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/common/listing_vision functions local infra bench serving evaluation doubles

# The docs site (MkDocs Material, mkdocs.yml): pages under docs/, built into build/site.
export NO_MKDOCS_2_WARNING := 1
docs: $(STAMP)  ## Build the docs site strictly into build/site (a broken link, anchor or missing page fails)
	$(BIN)/python -m mkdocs build --strict

docs-serve: $(STAMP)  ## Serve the docs site on http://127.0.0.1:8100, rebuilt on every change
	$(BIN)/python -m mkdocs serve --strict --dev-addr 127.0.0.1:8100

openapi: $(STAMP)  ## Write the API's OpenAPI document (generated from the handlers) to build/openapi.json
	$(BIN)/python -m functions.openapi --out build/openapi.json

layer: $(STAMP)  ## Build the Lambda layers (layers/layers.json) into build/layers, bytecode compiled with python3.12
	PIP=$(BIN)/pip $(BIN)/python scripts/build_layers.py --out build/layers

CLIP_MODEL ?= build/clip/model.onnx
DESCRIPTOR := layers/common/listing_vision/embeddings/models/dct_descriptor.onnx
# The ONNX Runtime the package carries (serving/clip/targets.py): gpu for endpoint_mode realtime_gpu,
# cpu for realtime_cpu and serverless_cpu; by default the stage's (CONTEXT, else the example context)
CLIP_TARGET ?= $(shell $(BIN)/python -m serving.clip.targets $(if $(wildcard $(CONTEXT)),$(CONTEXT),$(EXAMPLE_CONTEXT)))
clip-model: $(STAMP)  ## Package the CLIP export (build/clip/model.onnx) as model.tar.gz, with the wheels its container installs offline for the stage's endpoint mode (CLIP_TARGET=gpu|cpu overrides); CLIP_DESCRIPTOR=1 packages the weight-free descriptor on purpose
	@if [ "$(CLIP_DESCRIPTOR)" = "1" ]; then \
		$(BIN)/python -m serving.clip.package --model $(DESCRIPTOR) --out build/clip/model.tar.gz --allow-descriptor --target $(CLIP_TARGET); \
	elif [ -f "$(CLIP_MODEL)" ]; then \
		$(BIN)/python -m serving.clip.package --model $(CLIP_MODEL) --out build/clip/model.tar.gz --target $(CLIP_TARGET) \
			$(foreach v,fp16 int8,$(if $(wildcard $(CLIP_MODEL:.onnx=.$(v).onnx)),--$(v)-model $(CLIP_MODEL:.onnx=.$(v).onnx))) \
			$(if $(wildcard $(dir $(CLIP_MODEL))model-report.json),--report $(dir $(CLIP_MODEL))model-report.json); \
	else \
		echo "No CLIP export at $(CLIP_MODEL). Export one: .venv/bin/python -m serving.clip.export --model openai/clip-vit-base-patch32 --out $(CLIP_MODEL)" >&2; \
		echo "or deploy the weight-free descriptor on purpose: make clip-model CLIP_DESCRIPTOR=1" >&2; exit 1; \
	fi

node_modules/.bin/cdk: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $@

CONTEXT ?= infra/stages/dev.json
CDK_CONTEXT := $(if $(wildcard $(CONTEXT)),-c context_file=$(CONTEXT),)
# A fresh clone has no stage file yet: synth (never deploy) then uses the example context, saying so,
# and, without a CLIP package, the weight-free descriptor in its place (infra/app.py says so loudly).
EXAMPLE_CONTEXT := infra/stages/dev.example.json
synth: layer node_modules/.bin/cdk  ## Synthesize the CloudFormation template (no AWS account needed): make synth CONTEXT=infra/stages/dev.json
	@test -f "$(CONTEXT)" || echo "*** No $(CONTEXT): synthesizing the example context, $(EXAMPLE_CONTEXT) ***" >&2
	npx cdk synth --no-notices --quiet -c context_file=$(if $(wildcard $(CONTEXT)),$(CONTEXT),$(EXAMPLE_CONTEXT)) -c synth_only=true

deploy: layer node_modules/.bin/cdk  ## Deploy to the AWS account in your environment: make deploy CONTEXT=infra/stages/prod.json
	@test -f build/clip/model.tar.gz || $(MAKE) clip-model
	npx cdk deploy --no-notices --require-approval broadening $(CDK_CONTEXT)

clean:
	rm -rf $(VENV) build cdk.out node_modules tests/browser/node_modules
