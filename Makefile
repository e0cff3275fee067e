# The two commands: `make run` (the product, locally) and `make test` (the whole suite).
# Each creates or updates the virtual environment it needs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REQUIREMENTS := requirements.txt requirements-dev.txt constraints.txt layers/common/requirements.txt \
	layers/common/requirements-onnx.txt layers/common/pyproject.toml
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONUNBUFFERED := 1

.PHONY: run test bench backfill migrate lint synth layer clip-model deploy clean venv

venv: $(STAMP)

$(STAMP): $(REQUIREMENTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e layers/common
	@touch $(STAMP)

run: $(STAMP)  ## Start the local stack (API on http://127.0.0.1:8000); Ctrl-C stops it
	$(BIN)/python -m local

test: $(STAMP)  ## Run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)  ## Run every benchmark in bench/; prints one table and writes bench/results/latest.json
	$(BIN)/python -m bench $(BENCH_ARGS)

LOCAL_AWS := AWS_ENDPOINT_URL=http://127.0.0.1:8001 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1
backfill: $(STAMP)  ## Index images already in a storefront bucket of the running local stack: make backfill WEBSITE=alya
	$(LOCAL_AWS) $(BIN)/python -m listing_vision.jewelry.backfill --website $(or $(WEBSITE),alya) --via-lambda dedupe

migrate: $(STAMP)  ## Run a migration operation against the running local stack: make migrate ARGS="coverage --sample 100"
	$(LOCAL_AWS) OPENSEARCH_URL=http://127.0.0.1:8002 $(BIN)/python -m listing_vision.realestate.migrate $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/common/listing_vision functions local infra bench serving evaluation

layer: $(STAMP)  ## Build the common Lambda layer into build/layer
	PIP=$(BIN)/pip bash scripts/build_layer.sh build/layer

clip-model: $(STAMP)  ## Package build/clip/model.onnx (or, without one, the local descriptor) as model.tar.gz
	@test -f build/clip/model.onnx || { mkdir -p build/clip && cp layers/common/listing_vision/embeddings/models/dct_descriptor.onnx build/clip/model.onnx \
		&& echo "No build/clip/model.onnx: packaging the weight-free descriptor. Export real CLIP with python -m serving.clip.export."; }
	$(BIN)/python -m serving.clip.package --model build/clip/model.onnx --out build/clip/model.tar.gz

node_modules/.bin/cdk: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $@

synth: layer clip-model node_modules/.bin/cdk  ## Synthesize the CloudFormation template (no AWS account needed)
	npx cdk synth --no-notices --quiet

deploy: layer clip-model node_modules/.bin/cdk  ## Deploy to the AWS account in your environment
	npx cdk deploy --no-notices --require-approval broadening

clean:
	rm -rf $(VENV) build cdk.out node_modules
