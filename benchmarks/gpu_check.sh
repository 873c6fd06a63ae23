#!/usr/bin/env bash
# What was run on a lent GPU machine (the workplace's `device` tool) to check the CUDA path and measure it.
# That machine has its own torch build and no network: carry MNIST and the wheels it lacks in an ignored folder,
# e.g. .gpu/ (echo /.gpu/ >> .git/info/exclude):
#   mkdir -p .gpu/data .gpu/whl && cp -r ../shared/data/mnist .gpu/data/
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .gpu/whl faiss-cpu==1.15.1 keras==3.15.1 namex==0.1.0 optree==0.20.0
# then run `bash benchmarks/gpu_check.sh` there with carry [".gpu"]. Results land in $OUT (or ./gpu-out).
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src AEKIT_DATA_DIR=$PWD/.gpu/data PYTHONUNBUFFERED=1 MPLBACKEND=Agg
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1  # the `aekit` command
nvidia-smi -L
# the CUDA-only tests, then the whole suite on CUDA (estimators pick it by themselves; only MNIST was carried)
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/cuda_tests.log" | tail -3
python3 -m pytest -q -p no:cacheprovider --ignore tests/test_cuda.py \
    --deselect "tests/test_data.py::test_idx_datasets_from_data_dir[fashion-mnist-first_labels1]" 2>&1 \
    | tee "$OUT/pytest.log" | tail -3
python3 -m pytest -q -p no:cacheprovider -m slow 2>&1 | tee "$OUT/slow.log" | tail -3
python3 benchmarks/train_speed.py --device cuda --rounds 5 --skip sklearn 2>&1 | tee "$OUT/speed.log" | grep -v "^round"
