#!/bin/bash
# The device check of issue 6, sized for one call of at most ~9.5 minutes on one H100 or H200
# (each step has its own time limit, so a slow step cannot eat the next ones' time):
#   1. benchmarks/train_speed.py on CUDA (CUDA graphs, the default there), float32 and bf16
#   2. the default study on the GPU as `autoenc study` runs it (CUDA graphs, stacks of 8), with
#      STUDY_WORKERS trainer processes (default: the study's own), stopped after STUDY_LIMIT
#      seconds (default 270), nvidia-smi and /proc/loadavg sampled every second: trials done per
#      phase, when the last autoencoder trial finished, GPU utilization, CPU load
#   3. train_speed.py on CUDA without CUDA graphs (float32), for the graphs' speed-up
#   4. the CUDA-only tests (CUDA graphs give the eager steps' numbers, resumed too; noise on CUDA;
#      a model scored on CUDA gets the CPU's numbers)
#      and a stack on CUDA against separate fits there, with and without graphs
#   5. benchmarks/stack_speed.py on CUDA: models per second with 4 and 16 models per stack
#   6. the whole training step as one CUDA graph (--cuda-graphs step, not yet the default):
#      its CUDA test against eager steps, train_speed.py and a depth-5 stack of 8 both ways, and
#      train_speed.py in bf16 with it
#   7. trainer processes sharing the GPU (benchmarks/gpu_share.py: 1 and 4 processes, a depth-5
#      stack of 8 each), without and with NVIDIA's MPS (when nvidia-cuda-mps-control starts)
# STEPS picks and orders them (default "1 2 3 4 5"; 6 and 7 run only when named). STUDY_GRAPHS=step
# runs step 2's study with whole-step graphs, STUDY_MPS=1 under MPS. Everything it prints also
# lands in $OUT.
#
# The device machine has PyTorch but neither the data nor PyWavelets / bm3d. Prepare both here,
# in folders git ignores (never commit them), then run this script there:
#   mkdir -p .data .whl && cp -r "$AUTOENC_DATA_DIR"/mnist "$AUTOENC_DATA_DIR"/fashion-mnist .data/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl PyWavelets bm3d bm4d
#   device run: command "bash benchmarks/gpu_check.sh", carry [".data", ".whl"], timeout_s 590
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/tests AUTOENC_DATA_DIR=$PWD/.data PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/device.txt"
nproc | sed 's/^/cpus /' | tee -a "$OUT/device.txt"

step1() {
echo "== 1. seconds per epoch on CUDA (CUDA graphs, the default there), float32 and bf16"
for precision in fp32 bf16; do
    timeout 60 python3 benchmarks/train_speed.py --device cuda --epochs 3 --precision $precision 2>&1 \
        | tee -a "$OUT/train_speed_cuda.txt"
done
}

step2() {
echo "== 2. the default study on the GPU, workers ${STUDY_WORKERS:-auto}, graphs ${STUDY_GRAPHS:-auto} (at most ${STUDY_LIMIT:-270} s)"
(while true; do nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader; sleep 1; done) \
    > "$OUT/gpu_util.csv" &
SAMPLER=$!
(while true; do echo "$(date +%s) $(cut -d' ' -f1-4 /proc/loadavg)"; sleep 1; done) > "$OUT/loadavg.txt" &
LOADS=$!  # how busy the CPU cores were (the baselines run beside the trainers at nice 19)
START=$(date +%s)
[ "${STUDY_MPS:-0}" = 1 ] && mps_start
timeout "${STUDY_LIMIT:-270}" python3 -m autoenc study cuda_graphs=${STUDY_GRAPHS:-auto} ${STUDY_WORKERS:+workers=$STUDY_WORKERS} \
    hydra.run.dir=/tmp/lab 2>&1 | tail -5
echo "study wall: $(( $(date +%s) - START )) s, MPS ${STUDY_MPS:-0}" | tee "$OUT/study.txt"
[ "${STUDY_MPS:-0}" = 1 ] && mps_stop
kill $SAMPLER $LOADS
START=$START python3 - <<'PY' 2>&1 | tee -a "$OUT/study.txt"
import collections, glob, json, os
from autoenc.study import plan, preset
start = int(os.environ["START"])
total = collections.Counter(t.phase for t in plan(preset("lab"), {}))
rows = []
for f in glob.glob("/tmp/lab/trials/*/result.json"):
    r = json.load(open(f))
    if "started_at" not in r:  # a failed trial: no timeline
        r["started_at"] = r["finished_at"] = os.path.getmtime(f)
    r["started_at"], r["finished_at"] = r["started_at"] - start, r["finished_at"] - start
    rows.append(r)
done = collections.Counter(r["phase"] for r in rows)
print("trials done per phase (of those planned at the start; later phases are planned as earlier ones end):")
for phase in sorted(set(total) | set(done)):
    mine = [r for r in rows if r["phase"] == phase]
    last = max((r["finished_at"] for r in mine), default=0)
    print(f"  {phase}: {done[phase]} done (of {total.get(phase, '?')}), ok {sum(r.get('status') == 'ok' for r in mine)}, "
          f"last finished at {last:.0f} s")
ae = [r for r in rows if r.get("kind") == "ae"]
if ae:
    print(f"autoencoder trials: {len(ae)}, last finished at {max(r['finished_at'] for r in ae):.0f} s")
from autoenc.report.results import load_study
from autoenc.report import schedule_text, timeline
jobs, st = timeline(load_study("/tmp/lab"))  # seconds since the study's own start (the driver's, after imports)
if st:
    print("timeline:", schedule_text(jobs, st), f"(last result at {st['span']:.1f} s)")
with open(os.environ.get("OUT", "/tmp") + "/study_trials.txt", "w") as fh:
    for r in sorted(rows, key=lambda r: r["finished_at"]):
        trained = r.get("trained_at")
        extra = (f" trained at {trained - start:.1f} s epochs {r.get('epochs_run')} train s {r.get('seconds')} "
                 f"stacked {r.get('stacked', 1)} psnr {r.get('psnr', 0):.2f} precision {r.get('precision')}"
                 if r.get("kind") == "ae" and trained is not None else "")
        fh.write(f"{r['started_at']:.1f}-{r['finished_at']:.1f} s {r['id']} {r.get('status')} {r.get('worker')} "
                 f"wall {r.get('wall_seconds')}{extra}\n")
PY
awk -F', ' '{gsub(/ %/, "", $2); s += $2; n++} END {if (n) printf "GPU utilization: mean %.0f%% over %d s\n", s / n, n}' \
    "$OUT/gpu_util.csv" | tee -a "$OUT/study.txt"
awk '{s += $2; n++; if ($2 > m) m = $2} END {if (n) printf "CPU load (1-min average): mean %.1f, max %.1f over %d s\n", s / n, m, n}' \
    "$OUT/loadavg.txt" | tee -a "$OUT/study.txt"
}

step3() {
echo "== 3. seconds per epoch on CUDA without CUDA graphs (float32)"
timeout 60 python3 benchmarks/train_speed.py --device cuda --epochs 3 --no-cuda-graphs 2>&1 \
    | tee "$OUT/train_speed_cuda_eager.txt"
}

step4() {
echo "== 4. CUDA-only tests"
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_training.py tests/test_noise.py tests/test_evaluation.py -k "cuda" 2>&1 \
    | tail -15 | tee "$OUT/tests_cuda.txt"
timeout 60 python3 - <<'PY' 2>&1 | tee -a "$OUT/tests_cuda.txt"  # a stack on CUDA trains what separate fits train there
from autoenc import data, fit
from autoenc.model import ModelConfig
from autoenc.stacked import fit_stacked
from autoenc.training import TrainConfig
x, v = data.load("mnist", "train")[0][:3000], data.load("mnist", "val")[0][:1000]
jobs = [(x, v, TrainConfig(epochs=3, device="cuda", seed=s, l1=l1)) for s, l1 in ((0, 0.0), (1, 1e-4))]
for graphs in (False, True, "step"):
    stacked = fit_stacked(ModelConfig.preset(3, 15), jobs, progress=False, cuda_graphs=graphs)
    for s, (xt, xv, c) in zip(stacked, jobs):
        a = fit(ModelConfig.preset(3, 15), xt, xv, c, progress=False, cuda_graphs=graphs)
        print(f"graphs {graphs}: stacked vs fit on CUDA, val loss per epoch:",
              [round(h["val_loss"], 6) for h in s.history], [round(h["val_loss"], 6) for h in a.history])
PY
}

step5() {
echo "== 5. models per second in one stack on CUDA (CUDA graphs)"
for depth in 3 5; do
    timeout 45 python3 benchmarks/stack_speed.py --device cuda --depth $depth --stacks 4 16 2>&1 \
        | tee -a "$OUT/stack_speed_cuda.txt"
done
}

step6() {
echo "== 6. the whole step as one CUDA graph (cuda graphs: step) against the forward/backward graphs"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_training.py -k "cuda_graphs_give" 2>&1 \
    | tail -5 | tee "$OUT/whole_step.txt"
for graphs in step forward; do
    timeout 60 python3 benchmarks/train_speed.py --device cuda --epochs 3 --cuda-graphs $graphs 2>&1 \
        | tee -a "$OUT/whole_step.txt"
    timeout 60 python3 benchmarks/stack_speed.py --device cuda --depth 5 --stacks 8 --cuda-graphs $graphs 2>&1 \
        | tee -a "$OUT/whole_step.txt"
done
timeout 60 python3 benchmarks/train_speed.py --device cuda --epochs 3 --precision bf16 --cuda-graphs step 2>&1 \
    | tee -a "$OUT/whole_step.txt"  # bf16 was no faster while the launches set the pace
}

mps_start() {  # NVIDIA's Multi-Process Service: the processes' kernels run together instead of taking turns
    command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d && sleep 1 && echo "MPS started"
}

mps_stop() {
    echo quit | nvidia-cuda-mps-control && sleep 1 && echo "MPS stopped"
}

step7() {
echo "== 7. trainer processes sharing the GPU (depth-5 stacks of 8), without and with MPS, graphs ${SHARE_GRAPHS:-auto}"
timeout 60 python3 benchmarks/gpu_share.py --processes 1 4 --epochs 4 --cuda-graphs ${SHARE_GRAPHS:-auto} 2>&1 \
    | tee -a "$OUT/gpu_share.txt"
if mps_start; then
    timeout 60 python3 benchmarks/gpu_share.py --processes 1 4 --epochs 4 --cuda-graphs ${SHARE_GRAPHS:-auto} 2>&1 \
        | tee -a "$OUT/gpu_share.txt"
    mps_stop
else
    echo "MPS: could not start nvidia-cuda-mps-control" | tee -a "$OUT/gpu_share.txt"
fi
}

for step in ${STEPS:-1 2 3 4 5}; do
    "step$step"
done
