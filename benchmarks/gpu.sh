#!/usr/bin/env bash
# The benchmarks on a GPU, in one call (the lent device's time is short): step ratios vs optax and the
# copy floor, Lookahead vs the bare inner optimizer, the SAM family's costs, and a CPU-vs-GPU sanity check
# of the torch parity battery. Everything is wall-clock (a GPU step's CPU time is not its cost).
#   bash benchmarks/gpu.sh OUT_DIR [--smoke]   (--smoke: tiny sizes, to check the script on a CPU)
#   bash benchmarks/gpu.sh OUT_DIR --sam [--smoke]   (the SAM family only: its step costs on the MLP, the
#     branching members again with conds and loops in command buffers, and the cheap members, RWP and
#     ESAM, on the MLP and the Flax LM: issue 15's targets, in one call, at most 8 minutes)
#   bash benchmarks/gpu.sh OUT_DIR --momentum-sam [--smoke]   (momentum-SAM against its bases and the other
#     programs for its numbers, _momentum_sam_forms.py, on the MLP and the Flax LM, and sharpax's normal
#     draw against jax.random.normal's, at most 6 minutes)
#   bash benchmarks/gpu.sh OUT_DIR --rwp [--smoke]   (RWP alone: its step on the MLP and the Flax LM,
#     split as in --sam, other programs for its gradient on the MLP, and the normal draws at the MLP's
#     size, at most 8 minutes)
set -uo pipefail
out=${1:?usage: gpu.sh OUT_DIR [--sam | --momentum-sam | --rwp] [--smoke]}
shift
sam_only=""; momentum_only=""; rwp_only=""; smoke=""
for arg in "$@"; do
  case "$arg" in
    --sam) sam_only=1 ;; --momentum-sam) momentum_only=1 ;; --rwp) rwp_only=1 ;; --smoke) smoke=1 ;;
    *) echo "unknown argument $arg"; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."  # the repository root: the suites run as modules of the benchmarks package
export PYTHONUNBUFFERED=1
python3 -c "import jax, optax, flax; print('jax', jax.__version__, 'optax', optax.__version__, 'flax', flax.__version__, jax.devices())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
if [ -n "$smoke" ]; then
  mlp=(--hidden 64 --batch 32 --rounds 2); lm=(--tree transformer --batch 4 --seq 16 --rounds 2 --steps 2)
else
  mlp=(--inputs 1024 --hidden 4096 --layers 4 --batch 1024 --rounds 15)
  lm=(--tree transformer --batch 256 --seq 64 --rounds 15)
fi
if [ -n "$momentum_only" ]; then
  hlo=$(mktemp -d)
  forms=""
  for base in adam sgd_momentum; do
    forms+=",momentum_sam($base)"
    for form in "one update" "blue norm" "squares norm"; do forms+=",momentum_sam($base, $form)"; done
  done
  timeout 150 python3 -m benchmarks.bench_sam --clock wall --sections timing "${mlp[@]}" --out "$out/momentum_sam_mlp.json" \
    --only "adam,sgd_momentum$forms" --dump-hlo "$hlo/mlp" 2>&1 | tail -n 50
  timeout 150 python3 -m benchmarks.bench_sam --clock wall --sections timing "${lm[@]}" --out "$out/momentum_sam_transformer.json" \
    --only "adam,sgd_momentum,momentum_sam(adam),momentum_sam(sgd_momentum),momentum_sam(adam, one update),momentum_sam(sgd_momentum, one update),momentum_sam(adam, blue norm),momentum_sam(sgd_momentum, blue norm)" \
    --dump-hlo "$hlo/transformer" 2>&1 | tail -n 40
  # sharpax's normal draw (RWP's, BSAM's) against jax.random.normal's: the same program on a GPU, if
  # JAX's unrolled lowering and sharpax's compile alike.
  timeout 60 python3 -m benchmarks.bench_normal --clock wall --out "$out/normal.json" 2>&1 | tail -n 12
  tar czf "$out/hlo.tar.gz" -C "$hlo" . && ls -l "$out"
  exit 0
fi
if [ -n "$rwp_only" ]; then
  hlo=$(mktemp -d)
  if [ -n "$smoke" ]; then widths=64,64,10; else widths=1024,4096,4096,4096,4096,10; fi
  timeout 100 python3 -m benchmarks.bench_normal --clock wall --trees mlp --mlp "$widths" --out "$out/normal_mlp.json" 2>&1 | tail -n 9
  split="adam,rwp+adam,rwp two half passes+adam,rwp two half passes without noise+adam,rwp one vmapped pass without noise+adam,sam_value_and_grad+adam"
  others="rwp paired draw+adam,rwp two half passes paired draw+adam,rwp mix in cotangents+adam"
  timeout 200 python3 -m benchmarks.bench_sam --suite efficient --clock wall --sections timing --only "$split,$others" "${mlp[@]}" \
    --out "$out/sam_efficient_mlp.json" --dump-hlo "$hlo/efficient_mlp" 2>&1 | tail -n 24
  timeout 130 python3 -m benchmarks.bench_sam --suite efficient --clock wall --sections timing --only "$split" "${lm[@]}" \
    --out "$out/sam_efficient_transformer.json" 2>&1 | tail -n 20
  tar czf "$out/hlo.tar.gz" -C "$hlo" . && ls -l "$out"
  exit 0
fi
if [ -n "$sam_only" ]; then
  hlo=$(mktemp -d)  # each step's optimised HLO (its fusions), to read after the lease: one archive back
  timeout 150 python3 -m benchmarks.bench_sam --clock wall --sections timing "${mlp[@]}" --out "$out/sam.json" \
    --only "adam,sgd_momentum,sam_value_and_grad+adam,sharpax.sam(adam),optax.contrib.sam(adam, opaque),looksam(adam, k=5),periodic_sam(adam, k=5),momentum_sam(adam),momentum_sam(sgd_momentum),momentum_sam(adam, one update),momentum_sam(sgd_momentum, one update),ae_sam(adam),ae_sam(adam, never SAM)" \
    --dump-hlo "$hlo/family" 2>&1 | tail -n 40
  # XLA:GPU runs a cond or while by copying its predicate to the host, unless command buffers (CUDA
  # graphs, conditional nodes) hold it: the members with a per-step branch again, with them on.
  XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_command_buffer=+CONDITIONAL,+WHILE" timeout 75 \
    python3 -m benchmarks.bench_sam --clock wall --sections timing "${mlp[@]}" --out "$out/sam_branches_in_command_buffers.json" \
    --only "adam,sharpax.sam(adam),looksam(adam, k=5),periodic_sam(adam, k=5),ae_sam(adam, never SAM)" 2>&1 | tail -n 12
  # The rbg key and ESAM at beta = gamma = 1 (SAM's cost) were measured on the H200 already; their place
  # goes to RWP without its noise draw, which splits RWP's extra cost (the same number of variants).
  efficient=(--suite efficient --clock wall --only "adam,rwp+adam,rwp two half passes+adam,rwp two half passes without noise+adam,rwp one vmapped pass without noise+adam,esam(b=0.5,g=0.5)+adam,sam_value_and_grad+adam")
  timeout 120 python3 -m benchmarks.bench_sam "${efficient[@]}" "${mlp[@]}" --out "$out/sam_efficient_mlp.json" \
    --dump-hlo "$hlo/efficient_mlp" 2>&1 | tail -n 24
  timeout 150 python3 -m benchmarks.bench_sam "${efficient[@]}" "${lm[@]}" --out "$out/sam_efficient_transformer.json" 2>&1 | tail -n 24
  tar czf "$out/hlo.tar.gz" -C "$hlo" . && ls -l "$out"
  exit 0
fi
if [ -n "$smoke" ]; then
  regimes=flax_transformer; sam=(--hidden 64 --batch 32 --rounds 2); la=(--width 64 --depth 2 --rounds 2 --warmup 1)
else
  regimes=large_1x4M,large_1x64M,flax_transformer
  sam=(--inputs 1024 --hidden 4096 --layers 4 --batch 1024 --rounds 15)
  la=(--width 4096 --depth 8 --rounds 20 --warmup 5)
fi
timeout 230 python3 -m benchmarks.run --quick --clock wall --no-torch --sections step,memory \
  --regimes "$regimes" --out "$out/suite" 2>&1 | tail -n 60
timeout 110 python3 -m benchmarks.bench_sam --clock wall --sections timing "${sam[@]}" --out "$out/sam.json" 2>&1 | tail -n 40
timeout 100 python3 -m benchmarks.bench_lookahead --clock wall --per-step "${la[@]}" --out "$out/lookahead.json" 2>&1 | tee "$out/lookahead.txt" | tail -n 30
if [ -z "$smoke" ]; then
  timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_parity_torch.py -k "golden" 2>&1 | tail -n 5
fi
