#!/bin/bash
# A/B: alternate step.py runs of the committed tree (/tmp/orig, plus air/runtime.py) and the working tree.
# usage: ab.sh ROUNDS [step.py args]
cd /work/main
. /tmp/venv/bin/activate
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
rounds=$1; shift
for i in $(seq "$rounds"); do
  echo "--- orig"; PYTHONPATH=/tmp/orig python experiments/_perf_scratch/step.py "$@" | grep -v tune
  echo "--- new";  PYTHONPATH=/work/main python experiments/_perf_scratch/step.py "$@" | grep -v tune
done
