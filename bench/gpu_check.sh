#!/usr/bin/env bash
# The one prepared script of a session lent a GPU (issue #16). NOT YET RUN ON A GPU.
#
#   bash bench/gpu_check.sh [ODEFLOW_BINARY]
#
# The GPU machine has no Rust: build the binary beforehand on an x86-64 Linux machine with
#   cargo build --release -p odeflow-cli --features cuda && strip -o bench/.gpu/odeflow target/release/odeflow
# and carry it over (default path: bench/.gpu/odeflow, or $ODEFLOW_BIN, or the argument);
# for the TinyResNet runs also the MNIST IDX files (`odeflow data download mnist` puts them in
# ~/.cache/odeflow/data/mnist) copied to bench/.gpu/mnist (the GPU machine has no network).
# The machine needs python3 with torch, torchdiffeq, jax (CUDA build) and diffrax for the peers.
#
# What it does, each step bounded by a timeout so the whole run fits in about 8 minutes:
#   1. records the GPU and driver (nvidia-smi);
#   2. puts NVRTC and cuBLAS on the loader path from the Python wheels (torch's nvidia-*
#      dependencies) when they are not there already (odeflow opens them at run time);
#   3. GPU-vs-CPU agreement: `odeflow bench pendulum-mlp128-euler2 --device cuda --check-cpu`
#      with each gradient method (backprop, adjoint, reversible): final state, loss and
#      parameter gradient of one pass with Euler and with adaptive dopri5, against the CPU in
#      f32 and f64; fails when the GPU error exceeds 10x the CPU f32 error; and, with the
#      same gradient method, one training iteration of a small MLP classifier through the
#      device plan (odeflow::cuda::ClassifierStep: head, cross-entropy, the backward pass,
#      graph-safe Adam), eager and as a captured CUDA graph: logits, loss, parameter gradient
#      and the parameters after Adam against the CPU ("classifier_agreement" in the JSON,
#      same 10x rule); and one replay of the pendulum's captured regression plan (MSE, no
#      head) against the CPU ("regression_agreement");
#      the convolutional fields (`bench mnist-odenet64-euler8 --check-cpu` and the same for
#      cifar-odenet128-euler8: odenet on MNIST/CIFAR shapes, one solve and backward pass
#      against the CPU; one classifier training iteration with the workload's field on 8x8
#      images through the captured plan the benchmark times, eager and as a graph, with and
#      without an ANODE channel; on CIFAR a TinyResNet residual block (CudaResBlock) in
#      train and eval mode: output, running statistics, input and parameter gradients, and a
#      whole TinyResNet on the device (CudaTinyResNet: stem, body, head; untied and tied): loss,
#      gradient, running statistics after a step, eval logits);
#   4. training on the GPU, both paths, each checked on the CPU and on the GPU: a sphere2 MLP
#      classifier and a sphere2 simple_odenet (the captured CUDA graph, backprop), the
#      simple_odenet with the adjoint and an MLP with the reversible gradient (captured too,
#      memory-free), 300 iterations each; each GPU run is resumed for 100 more on the CPU; the captured
#      simple_odenet's weights are exported and `predict --device cuda` compared with the CPU
#      (logits, and the loss gradient of --labels/--grad-out);
#      a sphere2 MLP trained with Ott et al.'s step-size adaptation (--adapt: the generic path,
#      its probes on the device); TinyResNets on MNIST (`experiment resnet-depth`: ResNet and
#      HeunNet bodies of depth 4 and 8, backprop and reversible) on the GPU and one (ResNet,
#      depth 4, backprop) on the CPU, when the MNIST IDX files were carried to $MNIST_DIR
#      (default bench/.gpu/mnist);
#   5. the benchmark: odeflow on the GPU and on the CPU, torchdiffeq and diffrax on the GPU
#      (`--device cuda`, TF32 off) for $WORKLOADS (default: every workload; the CPU only for
#      the small ones, an image iteration takes seconds there);
#   6. prints a Markdown table (with the issue's targets) and writes everything under $OUT.
# PHASES (default "agreement train resnet predict bench") picks steps 3, 4 (train, resnet,
# predict: predict needs train's run in the same $OUT) and 5, so that the whole check fits
# calls of at most 10 minutes: e.g. PHASES="agreement train predict", then
# PHASES="resnet bench" (each call's table covers its phases).
# Exit status: 0 when every agreement check passed and odeflow ran on the GPU, 1 otherwise.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN="${1:-${ODEFLOW_BIN:-bench/.gpu/odeflow}}"
ITERS="${ITERS:-50}"
WORKLOADS="${WORKLOADS:-pendulum-mlp128-euler2 sphere2-euler256 mnist-odenet64-euler8 cifar-odenet128-euler8}"
OUT="${OUT:-bench/results/gpu-$(date -u +%Y%m%d-%H%M%S)}"
PY="${PYTHON:-python3}"
MNIST_DIR="${MNIST_DIR:-bench/.gpu/mnist}"
PHASES="${PHASES:-agreement train resnet predict bench}"
export PHASES
mkdir -p "$OUT"
status=0

log() { echo "gpu_check: $*" >&2; }
phase() { [[ " $PHASES " == *" $1 "* ]]; }

if [[ ! -x "$BIN" ]]; then
  log "no odeflow binary at $BIN (build it with --features cuda and carry it; see the header)"
  exit 1
fi

# 1. The machine.
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv \
  >"$OUT/nvidia-smi.csv" 2>&1 || log "nvidia-smi failed (see $OUT/nvidia-smi.csv)"
cat "$OUT/nvidia-smi.csv" >&2
"$BIN" --version >&2

# 2. NVRTC and cuBLAS from the Python wheels, if any (the driver's libcuda is a system library).
libdirs="$("$PY" - <<'EOF' 2>/dev/null
import glob, os, site
dirs = set()
roots = site.getsitepackages() + [site.getusersitepackages()]
for root in roots:
    for name in ("libnvrtc.so*", "libcublas.so*"):
        for f in glob.glob(os.path.join(root, "nvidia", "*", "lib", name)):
            dirs.add(os.path.dirname(f))
print(":".join(sorted(dirs)))
EOF
)"
if [[ -n "$libdirs" ]]; then
  export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  log "LD_LIBRARY_PATH += $libdirs"
fi
echo "${LD_LIBRARY_PATH:-}" >"$OUT/ld_library_path.txt"

if phase agreement; then
# 3. Agreement with the CPU, per gradient method.
for g in backprop adjoint reversible; do
  log "agreement ($g)"
  if timeout 120 "$BIN" bench pendulum-mlp128-euler2 --device cuda --check-cpu --grad "$g" \
      --iters 3 --warmup 1 --json >"$OUT/agreement-$g.json" 2>"$OUT/agreement-$g.err"; then
    log "agreement ($g): passed"
  else
    log "agreement ($g): FAILED: $(tail -n 1 "$OUT/agreement-$g.err")"
    status=1
  fi
done

for w in mnist-odenet64-euler8 cifar-odenet128-euler8; do
  log "agreement ($w)"
  if timeout 150 "$BIN" bench "$w" --device cuda --check-cpu --iters 2 --warmup 1 \
      --json >"$OUT/agreement-$w.json" 2>"$OUT/agreement-$w.err"; then
    log "agreement ($w): passed"
  else
    log "agreement ($w): FAILED: $(tail -n 1 "$OUT/agreement-$w.err")"
    status=1
  fi
done
fi # phase agreement

if phase train; then
# 4. Training on the GPU; the runs are checked on both devices and resumed on the CPU.
train_case() { # name, flags...
  local name="$1"; shift
  local dir="$OUT/train-$name"
  log "train ($name) on the GPU"
  if timeout 150 "$BIN" --device cuda train --dataset sphere2 --dtype f32 --iterations 300 \
      --no-check --out-dir "$dir" "$@" --json >"$OUT/train-$name.json" 2>"$OUT/train-$name.err" \
    && timeout 60 "$BIN" check "$dir" --exit-zero --json >"$OUT/check-cpu-$name.json" 2>>"$OUT/train-$name.err" \
    && timeout 60 "$BIN" --device cuda check "$dir" --exit-zero --json >"$OUT/check-gpu-$name.json" 2>>"$OUT/train-$name.err" \
    && timeout 90 "$BIN" train --out-dir "$dir" --resume --iterations 400 --no-check --json \
      >"$OUT/resume-cpu-$name.json" 2>>"$OUT/train-$name.err"; then
    log "train ($name): trained on the GPU, checked on both, resumed on the CPU"
  else
    log "train ($name) FAILED: $(tail -n 1 "$OUT/train-$name.err")"
    status=1
  fi
}
train_case mlp-captured --model mlp --method rk4 --steps 8 --lr 1e-2
train_case odenet-captured --model simple_odenet --method euler --steps 8 --lr 1e-2
train_case odenet-adjoint --model simple_odenet --method euler --steps 8 --lr 1e-2 --grad adjoint
train_case mlp-reversible --model mlp --method heun --steps 8 --lr 1e-2 --grad reversible
train_case mlp-adapt --model mlp --method midpoint --adapt --lr 1e-2
fi # phase train

if phase resnet; then
# TinyResNets (Sander et al.) with their bodies on the GPU, and one on the CPU beside them.
if [[ -f "$MNIST_DIR/t10k-images-idx3-ubyte" || -f "$MNIST_DIR/t10k-images-idx3-ubyte.gz" ]]; then
  depth_case() { # name, timeout, flags...
    local name="$1" limit="$2"; shift 2
    log "experiment resnet-depth ($name)"
    if timeout "$limit" "$BIN" "$@" experiment resnet-depth --data-dir "$MNIST_DIR" \
        --iterations 200 --out-dir "$OUT/$name" --json \
        >"$OUT/$name.json" 2>"$OUT/$name.err"; then
      log "experiment resnet-depth ($name): done"
    else
      log "experiment resnet-depth ($name) FAILED: $(tail -n 1 "$OUT/$name.err")"
      return 1
    fi
  }
  depth_case resnet-depth-gpu 150 --device cuda --depths 4,8 || status=1
  depth_case resnet-depth-cpu 90 --depths 4 --schemes euler --grads backprop
  log "experiment resnet-distance on the GPU"
  if timeout 90 "$BIN" --device cuda experiment resnet-distance --data-dir "$MNIST_DIR" \
      --depths 4,8 --iterations 100 --every 50 --out-dir "$OUT/resnet-distance-gpu" \
      >"$OUT/resnet-distance-gpu.txt" 2>"$OUT/resnet-distance-gpu.err"; then
    log "experiment resnet-distance: $(tail -n 2 "$OUT/resnet-distance-gpu.txt" | head -n 1)"
  else
    log "experiment resnet-distance FAILED: $(tail -n 1 "$OUT/resnet-distance-gpu.err")"
    status=1
  fi
else
  log "experiment resnet-depth skipped: no MNIST IDX files in $MNIST_DIR (carry them there)"
fi
fi # phase resnet

if phase predict; then
# predict on both devices from the exported weights of the captured simple_odenet run.
log "predict (simple_odenet weights) on the CPU and on the GPU"
if timeout 60 "$BIN" export "$OUT/train-odenet-captured" --out "$OUT/odenet.safetensors" --dtype f32 \
    2>"$OUT/predict.err" \
  && "$PY" -c "import numpy as np; np.save('$OUT/x.npy', np.random.default_rng(0).uniform(-1.5, 1.5, (256, 1, 2)).astype(np.float32))" \
  && timeout 60 "$BIN" predict --weights "$OUT/odenet.safetensors" --model simple_odenet \
    --input "$OUT/x.npy" --method dopri5 --tol 1e-6 --dtype f32 --out "$OUT/logits-cpu.npy" 2>>"$OUT/predict.err" \
  && timeout 60 "$BIN" --device cuda predict --weights "$OUT/odenet.safetensors" --model simple_odenet \
    --input "$OUT/x.npy" --method dopri5 --tol 1e-6 --dtype f32 --out "$OUT/logits-gpu.npy" 2>>"$OUT/predict.err" \
  && "$PY" -c "
import numpy as np, sys
c, g = np.load('$OUT/logits-cpu.npy'), np.load('$OUT/logits-gpu.npy')
r = float(np.abs(c - g).max() / max(np.abs(c).max(), 1e-30))
print(f'predict GPU vs CPU: max relative difference {r:.2e}', file=sys.stderr)
open('$OUT/predict.txt', 'w').write(f'{r:.3e}\\n')
sys.exit(0 if r < 1e-3 else 1)
" 2>>"$OUT/predict.err"; then
  log "predict: $(tail -n 1 "$OUT/predict.err")"
else
  log "predict FAILED: $(tail -n 1 "$OUT/predict.err")"
  status=1
fi

# The loss gradient of the same weights (--labels, --grad-out) on both devices.
log "predict --grad-out on the CPU and on the GPU"
if "$PY" -c "import numpy as np; np.save('$OUT/labels.npy', np.random.default_rng(1).integers(0, 2, 256).astype('<f8'))" \
  && timeout 60 "$BIN" predict --weights "$OUT/odenet.safetensors" --model simple_odenet \
    --input "$OUT/x.npy" --method rk4 --steps 8 --dtype f32 --out "$OUT/g-logits-cpu.npy" \
    --labels "$OUT/labels.npy" --grad-out "$OUT/grad-cpu.safetensors" 2>"$OUT/grad.err" \
  && timeout 60 "$BIN" --device cuda predict --weights "$OUT/odenet.safetensors" --model simple_odenet \
    --input "$OUT/x.npy" --method rk4 --steps 8 --dtype f32 --out "$OUT/g-logits-gpu.npy" \
    --labels "$OUT/labels.npy" --grad-out "$OUT/grad-gpu.safetensors" 2>>"$OUT/grad.err" \
  && "$PY" -c "
import json, struct, sys
import numpy as np
def load_file(path):  # safetensors: u64 header length, JSON header, raw little-endian data
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    head, data = json.loads(b[8:8 + n]), b[8 + n:]
    kinds = {'F32': '<f4', 'F64': '<f8'}
    return {k: np.frombuffer(data[v['data_offsets'][0]:v['data_offsets'][1]], kinds[v['dtype']]).astype(np.float64)
            for k, v in head.items() if k != '__metadata__'}
c, g = load_file('$OUT/grad-cpu.safetensors'), load_file('$OUT/grad-gpu.safetensors')
num = sum(float(np.sum((c[k] - g[k]) ** 2)) for k in c) ** 0.5
den = max(sum(float(np.sum(c[k] ** 2)) for k in c) ** 0.5, 1e-30)
r = num / den
print(f'loss gradient GPU vs CPU: relative difference {r:.2e} over {len(c)} tensors', file=sys.stderr)
sys.exit(0 if r < 1e-3 else 1)
" 2>>"$OUT/grad.err"; then
  log "predict --grad-out: $(tail -n 1 "$OUT/grad.err")"
else
  log "predict --grad-out FAILED: $(tail -n 1 "$OUT/grad.err")"
  status=1
fi

# The Hamiltonian network (Zhu et al.'s separable H = T(p) + V(q)): weights written here
# (safetensors by hand: u64 header length, JSON header, little-endian data), a rollout by
# Störmer–Verlet (drift and kick on the device) and by RK4 (the whole field) on both devices.
log "predict (hamiltonian, verlet and rk4) on the CPU and on the GPU"
h_rollouts() {  # $1: the method; the rollout on the CPU, then on the GPU
  timeout 60 "$BIN" predict --weights "$OUT/h.safetensors" --model hamiltonian --input "$OUT/y0.npy" \
    --method "$1" --steps 200 --t1 2 --dtype f32 --out "$OUT/h-$1-cpu.npy" 2>>"$OUT/hamiltonian.err" \
  && timeout 60 "$BIN" --device cuda predict --weights "$OUT/h.safetensors" --model hamiltonian \
    --input "$OUT/y0.npy" --method "$1" --steps 200 --t1 2 --dtype f32 --out "$OUT/h-$1-gpu.npy" \
    2>>"$OUT/hamiltonian.err"
}
if "$PY" -c "
import json, struct
import numpy as np
rng = np.random.default_rng(2)
n, m = 3, 16
shapes = {'0.weight': (m, n), '0.bias': (m,), '2.weight': (m, m), '2.bias': (m,), '4.weight': (1, m), '4.bias': (1,)}
head, blobs, off = {}, [], 0
for part in ('kinetic', 'potential'):
    for k, s in shapes.items():
        a = (rng.standard_normal(s) / np.sqrt(s[-1])).astype('<f4')
        b = a.tobytes()
        head[f'field.{part}.{k}'] = {'dtype': 'F32', 'shape': list(s), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
h = json.dumps(head).encode()
h += b' ' * (-len(h) % 8)
open('$OUT/h.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
np.save('$OUT/y0.npy', rng.uniform(-1, 1, (512, 2 * n)))
" 2>"$OUT/hamiltonian.err" \
  && h_rollouts verlet && h_rollouts rk4 \
  && "$PY" -c "
import numpy as np, sys
worst = 0.0
for m in ('verlet', 'rk4'):
    c, g = np.load(f'$OUT/h-{m}-cpu.npy'), np.load(f'$OUT/h-{m}-gpu.npy')
    worst = max(worst, float(np.abs(c - g).max() / max(np.abs(c).max(), 1e-30)))
print(f'hamiltonian rollouts GPU vs CPU (verlet, rk4; 200 steps): max relative difference {worst:.2e}', file=sys.stderr)
sys.exit(0 if worst < 1e-3 else 1)
" 2>>"$OUT/hamiltonian.err"; then
  log "predict hamiltonian: $(tail -n 1 "$OUT/hamiltonian.err")"
else
  log "predict hamiltonian FAILED: $(tail -n 1 "$OUT/hamiltonian.err")"
  status=1
fi
fi # phase predict

if phase bench; then
# 5. The benchmark.
run() { # name, timeout, command...
  local name="$1" limit="$2"; shift 2
  log "$name"
  if ! timeout "$limit" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"; then
    log "$name failed: $(tail -n 1 "$OUT/$name.err")"
    return 1
  fi
}
for w in $WORKLOADS; do
  run "odeflow-cuda-$w" 120 "$BIN" bench "$w" --device cuda --iters "$ITERS" --json || status=1
  case "$w" in
    mnist-*|cifar-*) ;;
    *) run "odeflow-cpu-$w" 180 "$BIN" bench "$w" --iters "$ITERS" --json ;;
  esac
  run "torchdiffeq-cuda-$w" 180 "$PY" bench/peers_torchdiffeq.py "$w" --device cuda --iters "$ITERS"
  run "diffrax-cuda-$w" 240 "$PY" bench/peers_diffrax.py "$w" --device cuda --iters "$ITERS"
  # The memory-free gradients through the same captured graph (odeflow only: the peer
  # scripts time backprop through the solver).
  case "$w" in
    sphere2-*|mnist-*)
      for g in adjoint reversible; do
        run "odeflow-cuda-$g-$w" 120 "$BIN" bench "$w" --device cuda --grad "$g" --iters "$ITERS" --json
      done ;;
  esac
done
fi # phase bench

# 6. The table.
"$PY" - "$OUT" $WORKLOADS <<'EOF'
import json, os, sys
out, workloads = sys.argv[1], sys.argv[2:]

def read(name):
    """The JSON result in OUT/name.json: odeflow pretty-prints it, the peers print one line."""
    try:
        text = open(os.path.join(out, name + ".json")).read().strip()
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        for line in reversed(text.splitlines()):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None

def cell(r):
    return "n/a" if not r or "ms_per_iter" not in r else f"{r['ms_per_iter']:.2f}"

smi = open(os.path.join(out, "nvidia-smi.csv")).read().strip().splitlines()
gpu = smi[-1] if smi else "unknown"
phases = os.environ.get("PHASES", "").split()
lines = [f"GPU: {gpu}", f"Phases: {' '.join(phases)}", ""]
if "bench" in phases:
    lines += ["ms per training iteration (median):", "",
             "| workload | odeflow cuda | torchdiffeq cuda | diffrax cuda | odeflow cpu | target |",
             "|---|---|---|---|---|---|"]
    targets = {"sphere2-euler256": "≤ 10", "mnist-odenet64-euler8": "≤ 6.7",
               "cifar-odenet128-euler8": "≤ 20.4", "pendulum-mlp128-euler2": "≤ 1.5"}
    for w in workloads:
        lines.append("| " + " | ".join([w] + [cell(read(f"{f}-{w}")) for f in
                     ("odeflow-cuda", "torchdiffeq-cuda", "diffrax-cuda", "odeflow-cpu")]
                     + [targets.get(w, "≤ faster peer")]) + " |")
    memfree = [(w, g, read(f"odeflow-cuda-{g}-{w}")) for w in workloads for g in ("adjoint", "reversible")]
    memfree = [(w, g, r) for w, g, r in memfree if r]
    if memfree:
        lines += ["", "odeflow cuda with the memory-free gradients (captured too), ms per iteration:", ""]
        lines += [f"- {w}, {g}: {cell(r)}" for w, g, r in memfree]
if "train" in phases:
    lines += ["", "Training on the GPU (300 iterations, then checked; test accuracy and verdict):", ""]
    for name in ("mlp-captured", "odenet-captured", "odenet-adjoint", "mlp-reversible", "mlp-adapt"):
        t, c, g = read(f"train-{name}"), read(f"check-cpu-{name}"), read(f"check-gpu-{name}")
        acc = (t or {}).get("summary", {}).get("test_accuracy")
        v = lambda r: (r or {}).get("summary", "n/a")
        lines.append(f"- {name}: test accuracy {acc}; check on the CPU: {v(c)}; on the GPU: {v(g)}")
if "predict" in phases:
    for name, what in (("predict", "logits"), ("grad", "loss gradient"), ("hamiltonian", "Hamiltonian rollouts")):
        try:
            last = open(os.path.join(out, name + ".err")).read().strip().splitlines()[-1]
        except (OSError, IndexError):
            last = "not run or failed"
        lines.append(f"- predict ({what}), GPU vs CPU: {last}")
if "resnet" in phases:
    for name in ("resnet-depth-gpu", "resnet-depth-cpu"):
        r = read(name)
        runs = (((r or {}).get("result") or r or {}).get("runs")) or []
        for x in runs:
            lines.append(f"- {name} {x['scheme']} {x['grad']} depth {x['depth']}: test accuracy {x['test_accuracy']:.4f}, "
                         f"train {x['train_seconds']:.1f} s (200 iterations of 64 images)")
        if r is None:
            lines.append(f"- {name}: not run or failed (see {name}.err)")
if "agreement" in phases:
    for w in ("mnist-odenet64-euler8", "cifar-odenet128-euler8"):
        a = read(f"agreement-{w}")
        lines += ["", f"GPU vs CPU ({w}'s field, one solve and backward pass): {json.dumps((a or {}).get('agreement'))}"]
    a = read("agreement-cifar-odenet128-euler8")
    lines += ["", "GPU vs CPU (TinyResNet residual block, 16 channels on 8x8, 4 samples):", "",
              "| mode | output gpu | output cpu f32 | running stats gpu | cpu f32 | input grad gpu | cpu f32 | param grad gpu | cpu f32 | passed |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for b in (a or {}).get("res_block_agreement") or []:
        lines.append(f"| {'train' if b['train'] else 'eval'} | {b['out_rel_gpu']:.2e} | {b['out_rel_cpu_f32']:.2e} | "
                     f"{b['stats_rel_gpu']:.2e} | {b['stats_rel_cpu_f32']:.2e} | {b['gx_rel_gpu']:.2e} | {b['gx_rel_cpu_f32']:.2e} | "
                     f"{b['grad_rel_gpu']:.2e} | {b['grad_rel_cpu_f32']:.2e} | {b['passed']} |")
    if not (a or {}).get("res_block_agreement"):
        lines.append("| – | – | – | – | – | – | – | – | – | failed (see agreement-cifar-odenet128-euler8.err) |")
    lines += ["", "GPU vs CPU (whole TinyResNet on the device, 8 channels, depth 3, 6 images; one step, eager or the captured iteration at lr 0, then eval logits):", "",
              "| body | path | loss gpu | cpu f32 | gradient gpu | cpu f32 | running stats gpu | cpu f32 | eval logits gpu | cpu f32 | passed |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in (a or {}).get("tiny_resnet_agreement") or []:
        lines.append(f"| {b['scheme']} {b['grad']} {b['tying']} | {b.get('path', 'eager')} | {b['loss_rel_gpu']:.2e} | {b['loss_rel_cpu_f32']:.2e} | {b['grad_rel_gpu']:.2e} | "
                     f"{b['grad_rel_cpu_f32']:.2e} | {b['stats_rel_gpu']:.2e} | {b['stats_rel_cpu_f32']:.2e} | "
                     f"{b['logits_rel_gpu']:.2e} | {b['logits_rel_cpu_f32']:.2e} | {b['passed']} |")
    if not (a or {}).get("tiny_resnet_agreement"):
        lines.append("| – | – | – | – | – | – | – | – | – | – | failed (see agreement-cifar-odenet128-euler8.err) |")
    lines += ["", "GPU vs CPU (pendulum MLP; relative errors against the CPU in f64):", "",
              "| grad | method | state gpu | state cpu f32 | gradient gpu | gradient cpu f32 | passed |",
              "|---|---|---|---|---|---|---|"]
    for g in ("backprop", "adjoint", "reversible"):
        r = read(f"agreement-{g}")
        for a in (r or {}).get("regression_agreement") or []:
            lines.append(f"| {g} | captured regression (Euler, 2 steps; loss {a['loss_gpu']:.6f}) | – | – | "
                         f"{a['grad_rel_gpu']:.2e} | {a['grad_rel_cpu_f32']:.2e} | {a['passed']} |")
        for a in (r or {}).get("agreement") or []:
            lines.append(f"| {g} | {a['method']} | {a['y1_rel_gpu']:.2e} | {a['y1_rel_cpu_f32']:.2e} | "
                         f"{a['grad_rel_gpu']:.2e} | {a['grad_rel_cpu_f32']:.2e} | {a['passed']} |")
        if not r:
            lines.append(f"| {g} | – | – | – | – | – | failed (see agreement-{g}.err) |")
    lines += ["", "GPU vs CPU (one classifier training iteration through the device plan; relative errors against the CPU in f64):", "",
              "| field | sample | ANODE | method | steps | gradient | graph | loss gpu | loss cpu f64 | logits gpu | logits cpu f32 | gradient gpu | gradient cpu f32 | params gpu | params cpu f32 | passed |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for src in ("agreement-backprop", "agreement-adjoint", "agreement-reversible",
                "agreement-mnist-odenet64-euler8", "agreement-cifar-odenet128-euler8"):
        r = read(src)
        for a in (r or {}).get("classifier_agreement") or []:
            c = a["case"]
            lines.append(f"| {c['field'].get('kind')} | {c['sample']} | {c['augment']} | {c['method']} | {c['steps']} | {c['grad'].get('kind')} | {c['captured']} | "
                         f"{a['loss_gpu']:.6f} | {a['loss_cpu_f64']:.6f} | {a['logits_rel_gpu']:.2e} | {a['logits_rel_cpu_f32']:.2e} | "
                         f"{a['grad_rel_gpu']:.2e} | {a['grad_rel_cpu_f32']:.2e} | {a['params_rel_gpu']:.2e} | {a['params_rel_cpu_f32']:.2e} | {a['passed']} |")
        if not (r or {}).get("classifier_agreement"):
            lines.append(f"| – | – | – | – | – | – | – | – | – | – | – | – | – | – | – | failed (see {src}.err) |")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "summary.md"), "w").write(text + "\n")
EOF
log "results in $OUT"
exit "$status"
