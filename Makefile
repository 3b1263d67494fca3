# vision-pipelines: `make demo` runs the pipeline end to end, `make test` runs the tests.
# Both create what they need first (`make setup`): two pinned virtual environments, reused
# until their requirement or lock files change.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3.11
VENV := .venv
TRAINER_VENV := .venv-trainer
MXNET_VENV := .venv-mxnet
GE_VENV := .venv-ge
PIP_QUIET := -q --disable-pip-version-check

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__PARALLELISM := 4
export PYTHONPATH := $(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 2
# Podman's settings for these machines (runc, container limits), not the machine's own file.
export CONTAINERS_CONF := $(CURDIR)/docker/podman/containers.conf
# `make images`: official (digest-pinned bases), debian (a local debootstrap base) or auto.
IMAGE_BASE ?= auto

.PHONY: setup demo ui test test-interop browser lint format lock clean test-airflow-side test-trainer-side bench bench-data bench-train bench-manifest bench-transfer bench-segmentation bench-scaling \
	bench-transform-shards bench-pipe bench-serve bench-quality bench-tuning images pin-images engine

setup: $(VENV)/.installed $(TRAINER_VENV)/.installed $(GE_VENV)/.installed

# One environment per runtime (architecture.md); each is rebuilt from scratch when its
# requirements or its lock change, and left alone otherwise.
# $(call venv,FOLDER,REQUIREMENTS,LOCK): a fresh environment, exact versions from the lock.
define venv
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install $(PIP_QUIET) -r $(2) -c $(3) 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $(1)/.installed
endef

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.lock requirements.kserve.txt
	$(call venv,$(VENV),requirements-dev.txt,requirements.lock)
	$(KSERVE_SCHEMA)

# KServe's SDK wheel, read as the InferenceService schema by the deploy step (never installed).
define KSERVE_SCHEMA
	$(VENV)/bin/pip download $(PIP_QUIET) --no-deps --require-hashes -r requirements.kserve.txt \
		-d $(VENV)/share/vision-pipelines 2>&1 | { grep -v "^WARNING: Location" || true; } \
		|| { rm -f $(VENV)/.installed; false; }
endef

$(TRAINER_VENV)/.installed: docker/trainer/requirements.txt docker/trainer/requirements-dev.txt \
		docker/trainer/requirements.lock
	$(call venv,$(TRAINER_VENV),docker/trainer/requirements-dev.txt,docker/trainer/requirements.lock)

# Only for interoperability tests against the reference tools (never imported by our code).
$(MXNET_VENV)/.installed: tests/interop/requirements.txt tests/interop/requirements.lock
	$(call venv,$(MXNET_VENV),tests/interop/requirements.txt,tests/interop/requirements.lock)

# Great Expectations' own environment: the data-quality step runs `python -m tasks.quality` in it
# (operators/quality.py), and the manifest benchmark measures against it.
$(GE_VENV)/.installed: scripts/great_expectations.requirements.txt scripts/great_expectations.lock
	$(call venv,$(GE_VENV),scripts/great_expectations.requirements.txt,scripts/great_expectations.lock)

$(AIRFLOW_HOME)/airflow.db: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1

# Re-resolve every environment's exact versions from its requirement files.
lock: setup $(MXNET_VENV)/.installed $(GE_VENV)/.installed
	$(VENV)/bin/pip freeze --exclude-editable > requirements.lock
	$(TRAINER_VENV)/bin/pip freeze --exclude-editable > docker/trainer/requirements.lock
	$(MXNET_VENV)/bin/pip freeze --exclude-editable > tests/interop/requirements.lock
	$(GE_VENV)/bin/pip freeze --exclude-editable > scripts/great_expectations.lock
	$(VENV)/bin/python scripts/lock_hashes.py requirements.txt requirements.runtime.lock
	$(TRAINER_VENV)/bin/python scripts/lock_hashes.py docker/trainer/requirements.txt \
		docker/trainer/requirements.runtime.lock
	$(GE_VENV)/bin/python scripts/lock_hashes.py scripts/great_expectations.requirements.txt \
		scripts/great_expectations.runtime.lock

# The embedded deployment's pre-trained module (image_classification_tf's form default), made on
# this machine: a small CNN pre-trained on generated shapes, in a local mirror, pinned in the
# deployment's registry file. Only `make demo` and `make ui` point the deployment at it.
HUB := $(CURDIR)/data/hub
LOCAL_HUB := VISION_PIPELINES_TFHUB_MIRROR=file://$(HUB)/mirror VISION_PIPELINES_TFHUB_REGISTRY=$(HUB)/registry.json

$(HUB)/registry.json: | $(TRAINER_VENV)/.installed
	@echo "pre-training the embedded deployment's hub module (about a minute) ..."
	$(TRAINER_VENV)/bin/python -m tasks.hub pretrain --to file://$(HUB)/mirror --registry $@

demo: setup $(AIRFLOW_HOME)/airflow.db $(HUB)/registry.json
	$(LOCAL_HUB) $(VENV)/bin/python scripts/demo.py

# The Airflow UI and scheduler on this machine (http://localhost:8080, on localhost only; the
# generated admin password is printed and kept in .airflow/simple_auth_manager_passwords.json.generated).
# SQLite waits for its lock (operators/embedded_database.py): a backfill from the dialog while
# the scheduler writes.
EMBEDDED_DATABASE := AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=operators.embedded_database.CONNECT_ARGS \
	AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC=operators.embedded_database.CONNECT_ARGS
ui: setup $(AIRFLOW_HOME)/airflow.db data/datasets/shapes $(HUB)/registry.json
	$(LOCAL_HUB) $(EMBEDDED_DATABASE) AIRFLOW__API__HOST=127.0.0.1 PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
		$(VENV)/bin/airflow standalone

# The form's default dataset: the demo's generated shapes.
data/datasets/shapes: | $(VENV)/.installed
	$(VENV)/bin/python -m tasks.data.synthetic $@ --per-class 250

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Tests run in the environment they belong to: Airflow-side, data, browser and container tests
# in .venv, trainer tests (TensorFlow) in .venv-trainer. The two sessions run at once, each
# with pytest-xdist sending one test file per worker: most tests keep one core busy (a trainer
# process, TensorFlow's graph building) and some wait (heartbeats, the browser, containers).
# Files are handed out in the order listed, the slowest first, so that no long file starts
# last; the slowest tests are listed after each session: where the suite's time goes.
AIRFLOW_SLOW := tests/browser/test_ui.py tests/test_end_to_end_tuning.py \
	tests/test_end_to_end_gate.py tests/test_end_to_end.py \
	tests/test_end_to_end_segmentation.py tests/test_end_to_end_quality.py \
	tests/containers/test_trainer_image.py tests/test_end_to_end_shards.py \
	tests/test_end_to_end_tf.py tests/test_plugin_algorithm.py tests/containers/test_workers.py \
	tests/containers/test_airflow_image.py tests/containers/test_kube_play.py
AIRFLOW_TESTS := $(AIRFLOW_SLOW) tests/dags tests/operators tests/plugins tests/tasks/data \
	tests/tasks/test_recordio_cli.py tests/tasks/test_im2rec.py tests/tasks/test_atomic.py \
	tests/tasks/test_artifact.py tests/tasks/test_hyperparameter_schemas.py \
	tests/tasks/test_algorithm_packages.py tests/tasks/test_uris.py tests/tasks/test_progress.py \
	tests/tasks/test_limits.py tests/tasks/test_tuning.py tests/tasks/test_suite_rules.py tests/tasks/test_data_docs.py \
	tests/tasks/test_lifecycle.py tests/tasks/test_hub.py \
	tests/tasks/test_transform_shards.py tests/test_lint_scope.py tests/test_module_layout.py tests/test_locks.py \
	tests/test_base_images.py tests/test_deploy.py
ALGORITHM_TESTS := tests/tasks/algorithms
TRAINER_SLOW := $(addprefix $(ALGORITHM_TESTS)/,semantic_segmentation/test_learning.py \
	image_classification_tf/test_parity.py image_classification/test_parity.py \
	image_classification/test_multi_worker.py semantic_segmentation/test_training.py \
	image_classification/test_learning.py semantic_segmentation/test_pipe_mode.py \
	semantic_segmentation/test_resume.py semantic_segmentation/test_multi_worker.py \
	image_classification/test_pipe_mode.py image_classification/test_initial_weights.py \
	image_classification/test_training.py)
TRAINER_TESTS := $(TRAINER_SLOW) $(filter-out $(TRAINER_SLOW),$(wildcard $(ALGORITHM_TESTS)/*/test_*.py)) \
	tests/tasks/test_job.py tests/tasks/test_algorithms.py tests/tasks/test_serving_limits.py \
	tests/tasks/test_best_weights.py tests/tasks/test_throughput_log.py \
	tests/tasks/test_serving_batches.py
PYTEST := pytest -q -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder --durations=15

# The trainer session writes to its log while the other prints here; its log follows. The
# MXNet interoperability tests run once the Airflow-side session is done (it ends first),
# beside the trainer session's last files, instead of before both on an otherwise idle core.
TRAINER_LOG := $(or $(TMPDIR),/tmp)/vision-pipelines-trainer-tests.log
test: setup $(MXNET_VENV)/.installed $(AIRFLOW_HOME)/airflow.db lint browser images
	@echo "trainer tests run beside these; their report follows ($(TRAINER_LOG))"
	@$(MAKE) --no-print-directory test-trainer-side > $(TRAINER_LOG) 2>&1 & trainer=$$!; \
	$(MAKE) --no-print-directory test-airflow-side && airflow=0 || airflow=$$?; \
	$(MAKE) --no-print-directory test-interop && interop=0 || interop=$$?; \
	wait $$trainer && trainer=0 || trainer=$$?; \
	echo "--- trainer tests ($(TRAINER_VENV)):"; cat $(TRAINER_LOG); \
	exit $$(( airflow || interop || trainer ))

test-airflow-side:
	$(VENV)/bin/$(PYTEST) $(AIRFLOW_TESTS)

test-trainer-side:
	$(TRAINER_VENV)/bin/$(PYTEST) $(TRAINER_TESTS)

# The browser test drives Debian's chromium through chromedriver; installed when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0; \
	echo "installing Debian's chromium and chromium-driver for the browser test ..."; \
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; } \
		> /tmp/vision-pipelines-apt.log 2>&1 || { \
		echo "could not install chromium and chromium-driver (log: /tmp/vision-pipelines-apt.log);" \
			"install them as root: apt-get install chromium chromium-driver" >&2; exit 1; }

# Byte-level comparisons with MXNet 1.9.1's im2rec and recordio, in their own environment.
test-interop: $(MXNET_VENV)/.installed
	$(MXNET_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/interop

# The Airflow and trainer images, on the digest-pinned bases of docker/base-images.lock (a base
# pinned by tag only is refused before anything is built); pin-images asks the registries.
images: $(VENV)/.installed engine
	$(VENV)/bin/python scripts/base_images.py build --base $(IMAGE_BASE)

# A container engine: podman (runc) and debootstrap from Debian's packages, installed when no
# engine is there, as `make browser` installs chromium.
engine:
	@{ command -v podman || command -v docker; } >/dev/null && command -v debootstrap >/dev/null \
		&& exit 0; \
	echo "installing Debian's podman, runc and debootstrap for the images ..."; \
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq podman runc debootstrap; } \
		> /tmp/vision-pipelines-apt-engine.log 2>&1 || { \
		echo "could not install podman (log: /tmp/vision-pipelines-apt-engine.log)"; exit 1; }

pin-images: $(VENV)/.installed
	$(VENV)/bin/python scripts/base_images.py pin

clean:
	rm -rf $(AIRFLOW_HOME) data/runs data/work data/datasets data/hub

# Benchmarks against the reference tools (scripts, not tests); tables go to docs/benchmarks.md.
bench-data: setup $(MXNET_VENV)/.installed
	$(VENV)/bin/python scripts/bench_data.py

bench-manifest: setup $(GE_VENV)/.installed
	$(VENV)/bin/python scripts/bench_manifest.py

bench-quality: setup
	$(VENV)/bin/python scripts/bench_quality.py

bench-scaling: setup
	$(TRAINER_VENV)/bin/python scripts/bench_scaling.py

bench-transform-shards: setup
	$(VENV)/bin/python scripts/bench_transform.py

bench-pipe: setup
	$(TRAINER_VENV)/bin/python scripts/bench_pipe.py

bench-serve: setup
	$(TRAINER_VENV)/bin/python scripts/bench_serve.py

bench-train: setup $(MXNET_VENV)/.installed
	$(VENV)/bin/python scripts/bench_train.py

bench-transfer: setup
	$(VENV)/bin/python scripts/bench_transfer.py

bench-segmentation: setup $(MXNET_VENV)/.installed
	$(VENV)/bin/python scripts/bench_segmentation.py

bench-tuning: setup
	$(VENV)/bin/python scripts/bench_tuning.py

bench: bench-data bench-train bench-manifest bench-transfer bench-segmentation bench-scaling \
	bench-transform-shards bench-pipe bench-serve bench-quality bench-tuning
