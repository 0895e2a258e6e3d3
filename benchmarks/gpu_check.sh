#!/bin/bash
# The device check of issue 6, sized for one call of about 9 minutes on one H100 or H200:
#   1. the CUDA-only tests (CUDA graphs give the eager steps' numbers, resumed too; noise on CUDA)
#      and the stacked-training tests on CUDA
#   2. benchmarks/train_speed.py on CUDA, eager and with CUDA graphs (float32), and
#      benchmarks/stack_speed.py: models per second with 2 to 16 models in one stack
#   3. the default study on the GPU with CUDA graphs and STUDY_STACK (default 8) trials per stack,
#      stopped after STUDY_LIMIT seconds (default 240), with nvidia-smi sampled every second:
#      trials done, per-trial times, GPU utilization
# Everything it prints also lands in $OUT.
#
# The device machine has PyTorch but neither the data nor PyWavelets / bm3d. Prepare both here,
# in folders git ignores (never commit them), then run this script there:
#   mkdir -p .data .whl && cp -r "$AELAB_DATA_DIR"/mnist "$AELAB_DATA_DIR"/fashion-mnist .data/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl PyWavelets bm3d bm4d
#   device run: command "bash benchmarks/gpu_check.sh", carry [".data", ".whl"], timeout_s 590
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/tests AELAB_DATA_DIR=$PWD/.data PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/device.txt"

echo "== 1. CUDA-only tests"
python3 -m pytest -q -p no:cacheprovider tests/test_training.py tests/test_noise.py -k "cuda" 2>&1 | tail -15 \
    | tee "$OUT/tests_cuda.txt"
python3 - <<'PY' 2>&1 | tee -a "$OUT/tests_cuda.txt"  # a stack on CUDA trains what separate fits train there
import torch
from aelab import data, fit
from aelab.model import ModelConfig
from aelab.stacked import fit_stacked
from aelab.training import TrainConfig
x, v = data.load("mnist", "train")[0][:3000], data.load("mnist", "val")[0][:1000]
jobs = [(x, v, TrainConfig(epochs=3, device="cuda", seed=s, l1=l1)) for s, l1 in ((0, 0.0), (1, 1e-4))]
stacked = fit_stacked(ModelConfig.preset(3, 15), jobs, progress=False)
for s, (xt, xv, c) in zip(stacked, jobs):
    a = fit(ModelConfig.preset(3, 15), xt, xv, c, progress=False)
    print("stacked vs fit on CUDA, val loss per epoch:", [round(h["val_loss"], 6) for h in s.history],
          [round(h["val_loss"], 6) for h in a.history])
PY

echo "== 2. seconds per epoch on CUDA (float32), eager and with CUDA graphs"
python3 benchmarks/train_speed.py --device cuda --epochs 4 2>&1 | tee "$OUT/train_speed_cuda.txt"
python3 benchmarks/train_speed.py --device cuda --epochs 4 --cuda-graphs 2>&1 | tee "$OUT/train_speed_cuda_graphs.txt"
for depth in 3 5; do
    python3 benchmarks/stack_speed.py --device cuda --depth $depth --stacks 2 4 8 16 2>&1 | tee -a "$OUT/stack_speed_cuda.txt"
done

echo "== 3. the default study on the GPU with CUDA graphs, stacks of ${STUDY_STACK:-8} (at most ${STUDY_LIMIT:-240} s)"
(while true; do nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader; sleep 1; done) \
    > "$OUT/gpu_util.csv" &
SAMPLER=$!
START=$(date +%s)
AELAB_CUDA_GRAPHS=1 timeout "${STUDY_LIMIT:-240}" python3 -m aelab.cli study --preset default --stack "${STUDY_STACK:-8}" --out /tmp/lab --quiet 2>&1 | tail -5
echo "study wall: $(( $(date +%s) - START )) s" | tee "$OUT/study.txt"
kill $SAMPLER
python3 - <<'PY' 2>&1 | tee -a "$OUT/study.txt"
import glob, json
from aelab.study import count_trials, preset
rows = [json.load(open(f)) for f in glob.glob("/tmp/lab/trials/*/result.json")]
print(len(rows), "of", count_trials(preset("default")), "trials done;", sum(r.get("status") == "ok" for r in rows), "ok")
for r in sorted(rows, key=lambda r: r["id"]):
    extra = (f"epochs {r.get('epochs_run')} train s {r.get('seconds')} stacked {r.get('stacked', 1)} "
             f"psnr {r.get('psnr', 0):.2f}"
             if r.get("kind") == "ae" else "")
    print(r["id"], "wall", r.get("wall_seconds"), extra)
PY
awk -F', ' '{gsub(/ %/, "", $2); s += $2; n++} END {if (n) printf "GPU utilization: mean %.0f%% over %d s\n", s / n, n}' \
    "$OUT/gpu_util.csv" | tee -a "$OUT/study.txt"
