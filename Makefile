# Every target installs what it needs first; `make help` lists them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
EXPERIMENT ?= experiments/fashion_mnist_proxy
ABLATION ?= experiments/leave_one_out
REFERENCE := separate_downsampling# the last roadmap step: ConvNeXt-T
CALIBRATION ?= experiments/proxy_calibration
SEED_NOISE ?= experiments/seed_noise
ATTENTION ?= experiments/attention
FACTORIAL ?= experiments/factorial
FACTORIAL_SEEDS ?= 0 1# one seed at a time: a whole replicate of the design first
SEEDS ?= 0,1,2
STEP ?= inverted_bottleneck
LADDER ?= experiments/ladder
GPU_EXPERIMENT ?= experiments/fashion_mnist_proxy_gpu# make gpu-roadmap's records, once a GPU has written them
GPU_RECORDS = $(wildcard $(GPU_EXPERIMENT)/records)# empty until then: make figure leaves the folder alone
LADDER_SEEDS ?= 0 1# two seeds, their error pooled across the ladder's configurations
LADDER_SETTINGS ?= 3:sqrt 3:linear# passes:regulariser rule, in the order they run; 9:sqrt adds 9 passes (75 min of bare steps a seed, one core)
# The factorial's best row (the modern recipe, stage ratio, patchify stem, depthwise conv, moved up, separate
# downsampling), rerun on fresh seeds: its lead over the other 31 rows is inflated by its selection.
BEST_ROW = modern_recipe,stage_ratio,patchify_stem,depthwise_conv,move_up_dwconv,separate_downsampling
BEST_ROW_SEEDS ?= 2,3,4
# Every roadmap step, in order, read from roadmap/steps.py (which imports nothing beyond the standard library).
STEPS = $(shell PYTHONPATH=. $(PYTHON) -c 'from roadmap.steps import STEPS; print(",".join(STEPS))')
# A study trains into multirun/<study>/<setting>/, one folder per job named by the job (conf/train.yaml): run again,
# it skips the jobs whose record is there and continues an interrupted one from its newest checkpoint. Remove the
# folder to start the study afresh. ARGS go to every run of a study, e.g. ARGS="scale=paper data=imagenet
# data.root=/datasets/imagenet trainer=slurm hydra.launcher.partition=gpu" (docs/paper-scale.md); under ARGS a
# study's records, tables and figures go beside its runs (<runs>-report/), never into the committed experiments.
SWEEPS ?= multirun
ARGS ?=
runs_of = $$($(PY) scripts/plan.py --sweep-dir study=$(1) $(ARGS))
report_of = $(if $(ARGS),$$sweep-report,$(1))
# Candidates only ResNet-50 runs, in a sweep of their own: Fashion-MNIST's own 28 px leaves ConvNeXt's last stage
# nothing (7 -> 3 -> 1 -> 0 px), and a sweep is checked whole before it starts (roadmap/training/validation.py); the warmup
# rule leaves ConvNeXt-T's recipe, which warms up, as it is, so the runs there of every *warmup_rule candidate
# would repeat those without the rule.
comma := ,
space := $() $()
ALL_CANDIDATES = $(sort $(basename $(notdir $(wildcard conf/calibration/*.yaml))))
RESNET_ONLY_LIST = $(filter input_28 %warmup_rule,$(ALL_CANDIDATES))
RESNET_ONLY = $(subst $(space),$(comma),$(RESNET_ONLY_LIST))
CANDIDATES = $(subst $(space),$(comma),$(filter-out $(RESNET_ONLY_LIST),$(ALL_CANDIDATES)))

.PHONY: help install run test lint flops roadmap figure leave-one-out attention factorial calibration wandb-sync wandb-dashboard bench gpu-check gpu-bundle gpu-roadmap cross-rung ladder

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv, install the project (editable) with its test extras, and Fashion-MNIST

$(STAMP): pyproject.toml
	@# The embedded data set, Fashion-MNIST, comes from Debian when we may install packages.
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ ! -d /usr/share/datasets/fashion-mnist ]; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
		|| echo "warning: could not install dataset-fashion-mnist; see docs/training.md (Data)"; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install ## the main job: one roadmap step (STEP, default inverted_bottleneck) x 3 seeds at the proxy, plus ARGS; run again, it continues where it stopped
	$(PY) run.py -m +step=$(STEP) seed=$(SEEDS) $(ARGS)

test: install ## run ruff and the test suite, one worker per core (a test file stays on one worker: its module fixtures are built once)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n auto --dist loadfile

lint: install ## ruff only
	$(VENV)/bin/ruff check .

flops: install ## print and write experiments/complexity/<regime>.{csv,md} for both regimes
	$(PY) scripts/complexity.py

roadmap: install ## train every step x 3 seeds (the proxy, or ARGS), then tabulate and draw into EXPERIMENT (under ARGS: beside the runs) and log the figures as the study's wandb summary run; resumable
	@sweep=$(call runs_of,roadmap); out=$(call report_of,$(EXPERIMENT)); status=0; \
	$(PY) run.py -m +step=$(STEPS) seed=$(SEEDS) study=roadmap $(ARGS) || status=$$?; \
	$(PY) scripts/aggregate.py --runs $$sweep --collect-to $$out/records && \
	$(PY) scripts/figure.py --experiment $$out $(if $(ARGS),,--goal $(ATTENTION)/records) --wandb roadmap \
		--wandb-dir $$sweep && exit $$status

figure: install ## rebuild the committed tables, figures and study READMEs' generated table and provenance (EXPERIMENT's, ABLATION's, CALIBRATION's, SEED_NOISE's, ATTENTION's, FACTORIAL's and LADDER's, and GPU_EXPERIMENT's with its table across rungs where it has records) from their records (no training)
	$(PY) scripts/aggregate.py --runs $(EXPERIMENT)/records --out $(EXPERIMENT)
	$(PY) scripts/figure.py --experiment $(EXPERIMENT) --goal $(ATTENTION)/records
	$(PY) scripts/aggregate.py --runs $(ABLATION)/records --out $(ABLATION) --reference $(REFERENCE)
	$(PY) scripts/figure.py --experiment $(ABLATION) --reference $(REFERENCE)
	$(PY) scripts/calibrate.py --experiment $(CALIBRATION)
	$(PY) scripts/aggregate.py --runs $(SEED_NOISE)/records --out $(SEED_NOISE)
	$(PY) scripts/aggregate.py --runs $(ATTENTION)/records --out $(ATTENTION) --reference $(REFERENCE)
	$(PY) scripts/figure.py --experiment $(ATTENTION) --reference $(REFERENCE) --mixers
	$(PY) scripts/effects.py --experiment $(FACTORIAL) --path $(EXPERIMENT)/records --leave-one-out $(ABLATION)/records
	$(PY) scripts/ladder.py --experiment $(LADDER)
	$(if $(GPU_RECORDS),$(PY) scripts/aggregate.py --runs $(GPU_EXPERIMENT)/records --out $(GPU_EXPERIMENT))
	$(if $(GPU_RECORDS),$(PY) scripts/figure.py --experiment $(GPU_EXPERIMENT))
	$(if $(GPU_RECORDS),$(PY) scripts/cross_rung.py --rung "CPU 48 px=$(EXPERIMENT)" --rung "GPU 48 px=$(GPU_EXPERIMENT)" --out $(GPU_EXPERIMENT))

leave-one-out: install ## ConvNeXt-T with each delta reverted, and with Linear pointwise layers, x 3 seeds (the proxy, or ARGS), into ABLATION (under ARGS: beside the runs) and its wandb summary run; resumable
	@sweep=$(call runs_of,leave_one_out); out=$(call report_of,$(ABLATION)); status=0; \
	$(PY) run.py -m +ablation=leave_one_out seed=$(SEEDS) $(ARGS) || status=$$?; \
	$(PY) run.py -m +step=$(REFERENCE) +delta=pointwise_linear seed=$(SEEDS) study=leave_one_out $(ARGS) \
		|| status=$$?; \
	$(PY) scripts/aggregate.py --runs $$sweep --collect-to $$out/records --reference $(REFERENCE) && \
	$(PY) scripts/figure.py --experiment $$out --reference $(REFERENCE) --wandb leave_one_out \
		--wandb-dir $$sweep && exit $$status

# At the proxy the conv networks' records (ConvNeXt-T, kernel_7, the dense 7x7 conv) are the roadmap's and the
# leave-one-out's; under ARGS, ConvNeXt-T and kernel_7 train in the study itself.
attention: install ## window attention in place of the depthwise conv (ConvNeXt-T and kernel_7), and Swin-T, x 3 seeds (the proxy, or ARGS), beside the conv networks, into ATTENTION (under ARGS: beside the runs) and its wandb summary run; then the roadmap figure's Swin-T line; resumable
	@sweep=$(call runs_of,attention); out=$(call report_of,$(ATTENTION)); status=0; \
	$(PY) run.py -m +step=$(REFERENCE),kernel_7 '+delta=[window_attention]' seed=$(SEEDS) study=attention \
		$(ARGS) || status=$$?; \
	$(PY) run.py -m model=swin_t seed=$(SEEDS) study=attention $(ARGS) || status=$$?; \
	$(if $(ARGS),$(PY) run.py -m +step=$(REFERENCE),kernel_7 seed=$(SEEDS) study=attention $(ARGS) \
		|| status=$$?;,mkdir -p $(ATTENTION)/records && cp $(EXPERIMENT)/records/$(REFERENCE)-seed*.json \
		$(EXPERIMENT)/records/kernel_7-seed*.json $(ABLATION)/records/$(REFERENCE)@-depthwise_conv-seed*.json \
		$(ATTENTION)/records/ &&) \
	$(PY) scripts/aggregate.py --runs $$sweep --collect-to $$out/records --reference $(REFERENCE) && \
	$(PY) scripts/figure.py --experiment $$out --reference $(REFERENCE) --mixers --wandb attention \
		--wandb-dir $$sweep && \
	$(if $(ARGS),,$(PY) scripts/figure.py --experiment $(EXPERIMENT) --goal $(ATTENTION)/records &&) exit $$status

factorial: install ## the factorial study: 32 rows of a resolution-IV design over the 12 architecture changes x FACTORIAL_SEEDS (the proxy, or ARGS), seed by seed, into FACTORIAL (under ARGS: beside the runs) with its effects, alias chains, costs and the three views of every change; resumable
	@sweep=$(call runs_of,factorial); out=$(call report_of,$(FACTORIAL)); status=0; \
	for seed in $(FACTORIAL_SEEDS); do \
		$(PY) run.py -m +ablation=factorial seed=$$seed $(ARGS) || status=$$?; \
	done; \
	$(PY) scripts/effects.py --runs $$sweep --experiment $$out \
		$(if $(ARGS),,--path $(EXPERIMENT)/records --leave-one-out $(ABLATION)/records) && exit $$status

ladder: install ## the ladder study: ConvNeXt-T with each contested change reverted, and ResNet-50 under both recipes, at each of LADDER_SETTINGS x LADDER_SEEDS (proxy), beside the one-pass records, and the factorial's best row on fresh seeds, into LADDER; resumable
	@status=0; \
	$(PY) run.py -m '+delta=[$(BEST_ROW)]' seed=$(BEST_ROW_SEEDS) study=factorial \
		hydra.sweep.dir=$(SWEEPS)/factorial_fresh_seeds $(ARGS) || status=$$?; \
	for setting in $(LADDER_SETTINGS); do for seed in $(LADDER_SEEDS); do \
		$(PY) run.py -m +ablation=ladder scale.epochs=$${setting%%:*} scale.budget.regularization=$${setting##*:} \
			seed=$$seed $(ARGS) || status=$$?; \
	done; done; \
	$(PY) scripts/effects.py --experiment $(FACTORIAL) --fresh-runs $(SWEEPS)/factorial_fresh_seeds \
		--path $(EXPERIMENT)/records --leave-one-out $(ABLATION)/records && \
	$(PY) scripts/ladder.py --runs $(SWEEPS)/ladder --experiment $(LADDER) \
		--one-pass $(ABLATION)/records $(EXPERIMENT)/records && exit $$status

calibration: install ## the proxy calibration study: both ends of the roadmap x 3 seeds under every candidate in conf/calibration/ (ResNet-50 alone under RESNET_ONLY), into CALIBRATION (under ARGS: beside the runs); resumable
	@sweep=$(call runs_of,calibration); out=$(call report_of,$(CALIBRATION)); status=0; \
	$(PY) run.py -m +calibration=$(CANDIDATES) +step=baseline,$(REFERENCE) seed=$(SEEDS) study=calibration \
		hydra.sweep.subdir='$${calibration}/$${name}-seed$${seed}' $(ARGS) || status=$$?; \
	$(PY) run.py -m +calibration=$(RESNET_ONLY) +step=baseline seed=$(SEEDS) study=calibration \
		hydra.sweep.subdir='$${calibration}/$${name}-seed$${seed}' $(ARGS) || status=$$?; \
	$(PY) scripts/calibrate.py --runs $$sweep --experiment $$out && exit $$status

wandb-sync: install ## upload the offline wandb runs under multirun/ and outputs/ (run `.venv/bin/wandb login` first)
	@runs=$$(find multirun outputs -type d -name 'offline-run-*' 2>/dev/null); \
	if [ -z "$$runs" ]; then echo "no offline wandb runs under multirun/ or outputs/"; else $(VENV)/bin/wandb sync $$runs; fi

wandb-dashboard: install ## save the wandb dashboard, a report of one study, after wandb-sync; DASHBOARD_ARGS="--help"
	$(PY) scripts/dashboard.py $(DASHBOARD_ARGS)

bench: install ## training img/s and peak memory, ours vs timm; BENCH_ARGS="--help", or "loader --help" for the data loader
	$(PY) scripts/bench.py $(BENCH_ARGS)

# A GPU machine without network whose Python has PyTorch, Lightning and timm (a cluster's compute node) lacks only
# these, all pure Python: built here as wheels of this venv's versions, with Fashion-MNIST from Debian's
# dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, which make install installs as root).
BUNDLE ?= .whl
BUNDLE_PACKAGES = hydra-core omegaconf antlr4-python3-runtime fvcore iopath yacs termcolor submitit hydra-submitit-launcher pydoe
gpu-bundle: install ## wheels and Fashion-MNIST for `make gpu-check` on a machine without network, into BUNDLE (default .whl)
	$(PY) -m pip list --format=freeze 2>/dev/null | grep -i -E '^($(shell echo $(BUNDLE_PACKAGES) | tr ' ' '|'))==' > $(BUNDLE).txt
	$(PY) -m pip wheel --quiet --no-deps -w $(BUNDLE) -r $(BUNDLE).txt && rm $(BUNDLE).txt
	@# Pillow is compiled: this venv's version (below 13, see pyproject.toml), built for the GPU image's Python 3.12.
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d $(BUNDLE) \
		pillow==$$($(PY) -c 'import PIL; print(PIL.__version__)')
	mkdir -p $(BUNDLE)/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz $(BUNDLE)/fashion-mnist/
	@echo "there: pip install --no-index --no-deps --target /tmp/site $(BUNDLE)/*.whl; export PYTHONPATH=/tmp/site:.;" \
		"python3 scripts/gpu_check.py data.root=$(BUNDLE)/fashion-mnist"

gpu-check: install ## the GPU path end to end on one GPU (about 6 minutes on an H100: 335-338 s measured): step timing ours vs timm, a proxy job, a paper-scale job; writes experiments/gpu/<device>.md. GPU_CHECK_ARGS=--quick: reduced, on the CPU
	$(PY) scripts/gpu_check.py $(GPU_CHECK_ARGS)

gpu-roadmap: install ## the proxy roadmap on one GPU within a deadline (docs/device-data.md): a ConvNeXt-T probe per compile setting, then 17 steps x 3 seeds in worker processes, into experiments/fashion_mnist_proxy_gpu. GPU_ROADMAP_ARGS=--quick: reduced, on the CPU
	$(PY) scripts/gpu_roadmap.py $(GPU_ROADMAP_ARGS)

# Two roadmap folders or more, one per rung: the CPU proxy's (EXPERIMENT) and, e.g., make gpu-roadmap's.
RUNGS ?=
cross-rung: install ## each step's Δ with its 95% interval at every rung beside the paper's, and Spearman's rho per rung, into experiments/rungs; RUNGS='--rung "label=folder" --rung ...' (two roadmap folders or more)
	$(if $(RUNGS),,$(error make cross-rung needs RUNGS: two roadmap folders or more; e.g. RUNGS='--rung "CPU 48 px=$(EXPERIMENT)" --rung "GPU 48 px=experiments/fashion_mnist_proxy_gpu"' once make gpu-roadmap has written the second))
	$(PY) scripts/cross_rung.py $(RUNGS) --out experiments/rungs
