# dancekit: every target a newcomer, CI or a paper rebuild needs.
PY        ?= python3.11
VENV      ?= .venv
BIN       := $(VENV)/bin
TORCH     := torch==2.13.0
JOBS      ?= 2

.PHONY: install test check bench demo figures weights clean

$(BIN)/dancekit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and exactly: a looser requirement would pull gigabytes of CUDA packages
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	# test-only reference for the DanceCam weight format; never a runtime dependency (it drags timm/torchvision)
	$(BIN)/pip install --quiet --no-deps dynamic-network-architectures==0.4.4
	# test-only: ccdproc ships a real raw CCD frame with overscan (tests/data/a8280271.fits); never imported
	$(BIN)/pip install --quiet --no-deps ccdproc==2.5.1
	touch $(BIN)/dancekit

install: $(BIN)/dancekit  ## virtual environment with torch, dancekit and its test extras

test: install  ## the fast suite (< 10 min on 2 cores)
	$(BIN)/python -m pytest -q -m "not slow" -n $(JOBS)

check: install  ## the slow scientific checks
	$(BIN)/python -m pytest -q -m slow -n $(JOBS)

bench: install  ## speed and memory, as ratios against baselines timed in the same run
	@for b in benchmarks/bench_*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(BIN)/python $$b || exit 1; done

demo: install  ## simulate a turbulent video of a star field, make it sharp with the bundled U-Net, compare
	@mkdir -p demo
	$(BIN)/dancekit simulate-video --frames 40 --size 128 --stars 150 --seeing 1.2 --seed 1 -o demo/video.fits --overwrite
	$(BIN)/dancekit average demo/video.fits -o demo/average.fits --overwrite
	$(BIN)/dancekit infer-tiles demo/video.fits --stride 4 --average -o demo/inferred.fits --overwrite
	$(BIN)/dancekit evaluate demo/average.fits demo/inferred.fits --truth 'demo/video.fits[TRUTH]' -o demo/metrics.fits \
	  --plot demo/comparison.png --overwrite --json -q > demo/metrics.json
	@echo "demo products in demo/: video.fits (cube + TRUTH + CATALOG), average.fits, inferred.fits, metrics.fits and .json, comparison.png"
	@$(BIN)/python scripts/demo_summary.py demo/metrics.json demo/comparison.png

figures: install  ## figures and tables of the papers, rebuilt from scripts/
	@mkdir -p figures
	@for s in scripts/figure_*.py; do [ -e "$$s" ] || continue; echo "== $$s"; $(BIN)/python $$s figures || exit 1; done

UNET_VIDEOS ?= 207
UNET_STEPS  ?= 3000
weights: install  ## retrain the bundled default models (the exact commands; see dancekit/weights/README.md)
	DANCEKIT=$(BIN)/dancekit $(BIN)/python scripts/make_unet_training_set.py weights-data $(UNET_VIDEOS) 10000 --jobs 2
	$(BIN)/dancekit train-unet weights-data --context 32 --tile 128 --steps $(UNET_STEPS) --batch 4 --schedule cosine \
	  --flux-weight 0.5 --val-fraction 0.1 --seed 1 -o weights-data/c2pu_training.pt --overwrite
	$(BIN)/python scripts/deployable_checkpoint.py weights-data/c2pu_training.pt weights-data/c2pu_deployable.pt
	# flux calibration E[e- | output] and the training domain, on 16 other videos of the mix
	DANCEKIT=$(BIN)/dancekit $(BIN)/python scripts/make_unet_training_set.py weights-calibration 16 20000 --jobs 2
	$(BIN)/dancekit calibrate-unet weights-data/c2pu_deployable.pt weights-calibration \
	  -o dancekit/weights/c2pu_default.pt --overwrite
	mkdir -p build/dark_demo
	$(BIN)/dancekit simulate-dark --n 6 --temperature -25,-15,-10,-5 --seed 1 -o build/dark_demo/darks --overwrite
	$(BIN)/dancekit train-dark build/dark_demo/darks --epochs 8 --width 8 --crop 256 \
	  --set model.n_blocks=3 --set model.discriminator_width=16 --set model.coordinates=true \
	  --set model.template=true --set model.target=above_scaled --set model.loss_bce=0 --set model.loss_mse=0 \
	  --set model.learning_rate=1e-3 --set model.lr_decay=0.5 --set model.val_fraction=0.17 \
	  --seed 1 -o build/dark_demo/model.pt --overwrite
	$(BIN)/python scripts/deployable_checkpoint.py build/dark_demo/model.pt dancekit/weights/lamost_dark_demo.pt

clean:
	rm -rf $(VENV) demo figures .pytest_cache build *.egg-info
