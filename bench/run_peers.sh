#!/usr/bin/env bash
# Creates (once) the benchmark virtual environment bench/.venv with pinned diffrax/JAX and
# torchdiffeq/PyTorch from PyPI, then runs bench/compare.py with this script's arguments.
#
#   bash bench/run_peers.sh --workloads sphere2-euler256,sphere2-rk4-64 --iters 20
#
# Idempotent: a stamp file records what was installed; a second run installs nothing.
# PyTorch from PyPI is the CUDA build (~0.54 GB wheel + ~1.9 GB of nvidia-*/triton wheels,
# ~4 GB on disk); set BENCH_NO_TORCH=1 (or pass --skip-torch) to leave it out. If its install
# fails, the run continues without torchdiffeq (--skip-torch is added).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${BENCH_VENV:-$BENCH/.venv}"
PY="${PYTHON:-python3}"

JAX_PINS=(jax[cpu]==0.10.2 jaxlib==0.10.2 diffrax==0.7.2 equinox==0.13.8 optax==0.2.8
          lineax==0.1.1 optimistix==0.1.0 jaxtyping==0.3.11)
TORCH_PINS=(torch==2.15.0 torchdiffeq==0.2.5)

want_torch=1
want_jax=1
for a in "$@"; do
  case "$a" in
    --skip-torch) want_torch=0 ;;
    --skip-jax) want_jax=0 ;;
  esac
done
[[ "${BENCH_NO_TORCH:-0}" == 1 ]] && want_torch=0

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  { echo "run_peers.sh: need Python >= 3.10, $PY is $("$PY" --version 2>&1)" >&2; exit 1; }

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "run_peers.sh: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# install_once NAME PINS...: pip install unless the stamp says these pins are in.
install_once() {
  local name="$1"; shift
  local stamp="$VENV/.bench-$name" want="$*"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  local t0=$SECONDS
  echo "run_peers.sh: pip install $want" >&2
  if "$VPY" -m pip install --disable-pip-version-check -q "$@" >&2; then
    echo "$want" >"$stamp"
    echo "run_peers.sh: $name installed in $((SECONDS - t0)) s; venv now $(du -sh "$VENV" | cut -f1)" >&2
    return 0
  fi
  echo "run_peers.sh: installing $name failed after $((SECONDS - t0)) s" >&2
  return 1
}

extra=()
if [[ $want_jax == 1 ]]; then
  install_once jax "${JAX_PINS[@]}" || { echo "run_peers.sh: continuing without diffrax" >&2; extra+=(--skip-jax); }
fi
if [[ $want_torch == 1 ]]; then
  install_once torch "${TORCH_PINS[@]}" || { echo "run_peers.sh: continuing without torchdiffeq" >&2; extra+=(--skip-torch); }
elif [[ ! " $* " == *" --skip-torch "* ]]; then
  extra+=(--skip-torch)
fi

exec "$VPY" "$BENCH/compare.py" --python "$VPY" "${extra[@]}" "$@"
