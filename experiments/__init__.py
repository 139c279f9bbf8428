"""Command-line scripts over air/: train, evaluate, visualize, make_gif, benchmark.

They run numpy on one thread unless the environment says otherwise: the model's matmuls (batch 32) are
too small to gain from BLAS threads, which only burn the second core (measured: same wall time, twice the
CPU time). Set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS to override.
"""
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
