"""Many training runs: each named by its preset, seed and overrides (RunSpec), trained, resumed or skipped in a
worker process (run_one), all of them run on joblib processes, a Dask cluster or a Ray cluster (execute), and a
finished set's small files copied out to commit (publish). experiments.sweep and experiments.generalise make the
RunSpecs and call these.

joblib, Dask and Ray are optional (the sweep and ray extras): each is imported where its backend starts, so the
others need not be installed.
"""
import contextlib
import csv
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from air.checkpoint import CheckpointError, read_checkpoint
from air.config import preset
from air.data import load_mnist
from air.runtime import tune_allocator
from air.train import NonFiniteError, build_datasets, train

METRICS = ["status", "test_count_acc", "best_val_count_acc", "last_val_count_acc", "test_recon_mse", "test_box_iou",
           "best_epoch", "n_steps", "wall_s"]
RUN_FILES = ("config.json", "metrics.json")  # a run's small files: what a published result keeps of it


class BackendError(Exception):
    """A backend whose package is not installed. `backend` names it, `problem` says what to install; the scripts
    print it as one line (status 2)."""

    def __init__(self, backend, problem):
        super().__init__(f"backend {backend}: {problem}")
        self.backend = backend
        self.problem = problem


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run: its preset with `overrides` and `seed` applied, trained into `folder`."""

    name: str  # the run's folder name inside the sweep folder
    preset: str
    seed: int
    overrides: tuple  # ((field, value), ...) beyond the preset, base included
    folder: str
    data_dir: str = None  # AIR_MNIST_DIR for the worker (the launching shell's, so every backend reads the same digits)

    def config(self):
        return dataclasses.replace(preset(self.preset), seed=self.seed, **dict(self.overrides))


def run_one(spec):
    """Train (or resume, or skip) one run; returns its results row. Runs in a worker process, whose BLAS threads
    the launching script (experiments/__init__.py) or the backend has set."""
    if spec.data_dir:
        os.environ["AIR_MNIST_DIR"] = spec.data_dir
    folder = Path(spec.folder)
    done = complete_metrics(folder)
    if done is not None:
        return _row(spec, done, skipped=True)
    config = spec.config()
    resume = False
    if (folder / "checkpoint.npz").exists():
        try:
            resume = read_checkpoint(folder / "checkpoint.npz")["config"] == config
        except CheckpointError as error:
            # Training afresh would overwrite the damaged checkpoint: leave it for the user to look at or move.
            return _row(spec, {"status": f"failed: {error}; move it away to train this run afresh"}, skipped=False)
    tune_allocator()
    datasets = build_datasets(config, load_mnist())
    try:
        metrics = train(config, datasets, out_dir=folder, resume=resume)
    except NonFiniteError as error:
        return _row(spec, {"status": f"failed: {error}"}, skipped=False)
    return _row(spec, metrics, skipped=False)


def complete_metrics(folder):
    """The metrics.json of a finished run in `folder`, or None (no run, or one not finished)."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return metrics if metrics.get("status") == "complete" else None


def _row(spec, metrics, skipped):
    row = {"run": spec.name, "preset": spec.preset, "seed": spec.seed, **dict(spec.overrides)}
    row.update({key: metrics.get(key, "") for key in METRICS})
    row["skipped"] = skipped
    return row


def execute(runs, backend="joblib", jobs=2, scheduler=None, address=None, report=print):
    """Run every RunSpec on the backend; yields result rows as runs finish (in completion order)."""
    if backend == "joblib":
        from joblib import Parallel, delayed  # optional: the sweep extra
        yield from Parallel(n_jobs=jobs, return_as="generator_unordered")(delayed(run_one)(r) for r in runs)
    elif backend == "dask":
        yield from _on_dask(runs, scheduler, report)
    elif backend == "ray":
        yield from _on_ray(runs, address)
    else:
        raise ValueError(f"backend must be joblib, dask or ray; got {backend!r}")


def _on_dask(runs, scheduler, report):
    """execute on the Dask scheduler at `scheduler`, or on a local cluster made for these runs (None)."""
    try:
        from dask.distributed import Client, as_completed  # optional: the sweep extra
    except ImportError:
        raise BackendError("dask", "needs dask.distributed (pip install 'dask[distributed]')") from None
    with contextlib.ExitStack() as stack:
        if scheduler is None:  # a local cluster: its scratch space is removed with it, not left in /tmp
            import dask  # present with dask.distributed
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="air-dask-"))
            stack.enter_context(dask.config.set({"temporary-directory": scratch}))
            client = stack.enter_context(Client())
        else:
            client = stack.enter_context(Client(scheduler))
        report(f"dask scheduler {client.scheduler.address}")
        futures = client.map(run_one, runs, pure=False)
        for future in as_completed(futures):
            yield future.result()


def _on_ray(runs, address):
    """execute on the Ray cluster at `address`, or on a Ray of this machine started for these runs (None)."""
    if address is None:
        # A Ray of this machine for this sweep only. Ray would give it the machine's network address (found by
        # routing towards a public one); its single-machine mode, the one it uses on Windows and macOS, keeps
        # it on loopback instead. It takes effect where ray is first imported, as here in a script.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report unless the user asks for one
    try:
        import ray  # optional: the ray extra; imported after the settings above, which it reads
    except ImportError:
        raise BackendError("ray", "needs ray (pip install 'air-multimnist[ray]')") from None
    if address is None:
        ray.init(include_dashboard=False, ignore_reinit_error=True)
    else:
        ray.init(address=address, ignore_reinit_error=True)
    pending = [ray.remote(run_one).remote(r) for r in runs]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            row = ray.get(ready[0])
        except ray.exceptions.RayTaskError as error:
            # The worker's own exception (a DataError, say) rather than Ray's wrapper and its traceback text.
            raise (error.cause if isinstance(error.cause, Exception) else error) from None
        yield row


def publish(out, target, files=("results.csv", "sweep.png"), run_files=RUN_FILES, names=None):
    """Copy a finished sweep's small files into `target` (a folder to commit, e.g. docs/results/NAME): `files` of
    the sweep folder, and each finished run's `run_files` (config.json and metrics.json), of the runs `names`
    (default: every run in `out`); never a checkpoint. Returns the file count.

    Two sweeps may publish into one folder (presets_5seeds.toml and paper_reinforce_5seeds.toml both do): a
    results.csv already in `target` keeps its rows of runs this sweep does not have, so each sweep replaces
    only its own rows."""
    out, target = Path(out), Path(target)
    copied = 0
    for name in files:
        if (out / name).is_file():
            target.mkdir(parents=True, exist_ok=True)
            if name == "results.csv" and (target / name).is_file():
                _merge_results(out / name, target / name)
            else:
                shutil.copyfile(out / name, target / name)
            copied += 1
    for folder in sorted(p for p in out.iterdir() if (p / "metrics.json").is_file()):
        if names is not None and folder.name not in names:
            continue
        (target / folder.name).mkdir(parents=True, exist_ok=True)
        for name in run_files:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, target / folder.name / name)
                copied += 1
    return copied


def _merge_results(new, old):
    """Write the rows of results.csv `new` over results.csv `old`, keeping old's rows of runs `new` lacks; the
    columns are new's, then any only old has. With no row to keep, old becomes a byte-for-byte copy of new."""
    with open(new, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames), list(reader)
    with open(old, newline="") as f:
        reader = csv.DictReader(f)
        old_fields, old_rows = list(reader.fieldnames or []), list(reader)
    runs = {row["run"] for row in rows}
    kept = [row for row in old_rows if row.get("run") not in runs]
    if not kept:
        shutil.copyfile(new, old)
        return
    fields += [field for field in old_fields if field not in fields]
    with open(old, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(sorted(rows + kept, key=lambda row: row["run"]))
