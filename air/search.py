"""Count by the model's own evidence: search where the guide's one-shot answer may be wrong.

The guide proposes one explanation of a scene in one pass. Where two close digits fall in one window it counts
one, although the generative model itself often scores two objects higher. `search` asks the model: for the
guide's count n and its neighbours n - 1 and n + 1 it builds starting explanations (proposals; Search's default
is the first two kinds, chosen on validation scenes by experiments.search_tuning):

- "guide": the guide's own first steps (each step is inferred as if the earlier ones were present, so the guide
  has an answer for n + 1 objects too);
- "kmeans": windows on a weighted k-means of the ink's pixel coordinates, started along the ink's main axis
  ("across": at right angles to it);
- "split", "residual": the guide's windows with one split in two along its ink's main axis, or with a window
  added on the largest blob of ink nothing explains; "drop", "merge": with one window dropped, or two merged;

refines each by gradient ascent (Adam, through the renderer, differentiated by autograd) on

    log p(x | z_1..n) + sum_t [log p(z_what_t) + log p(z_where_t)],

and scores each count by an estimate of log p(x, n) around its best refined latents, the most probable count
kept. A raw MAP value would be biased against objects: each object's D-dimensional prior density pays its
normalising constant (about 46 nats for D = 50) with nothing to pay back the posterior's volume. The scores here
include that volume: the ELBO of a Gaussian centred at the refined latents with the likelihood at its mean
("means", air.density.elbo_at_means), or an importance-weighted estimate with k draws from it ("iw", a lower
bound on log p(x, n) in expectation). The Gaussian's spread is the guide's: z_what's from the glimpse encoder at
the refined window, z_where's from the guide's first step.

Searching costs milliseconds a scene against a fraction of one for the guide, so `infer(..., search=...)` spends
it only where it can matter: scenes whose amortised reconstruction leaves a window's worth of ink unexplained
(`unexplained_ink`, `gated`).
"""
import dataclasses

import autograd
import autograd.numpy as np
import numpy

from air.density import elbo_at_means, log_normal, objects_log_joint
from air.generative import negative_log_likelihood, prior_count_probs
from air.guide import glimpse_posterior, guide
from air.optim import adam_init, adam_update
from air.schedules import at_end
from air.transformer import box_where, window_boxes

SCORES = ("iw", "means")
IW_ROWS = 4096  # explanations rendered at once by the "iw" score (memory: rows x H x W)
PROPOSALS = ("guide", "kmeans", "across", "split", "residual", "drop", "merge")


@dataclasses.dataclass(frozen=True)
class Search:
    """How to search. steps, lr and what_lr: Adam's refinement of every proposal (z_where's and z_what's step
    sizes); proposals: the kinds of starting explanation (PROPOSALS); score: "means" or "iw" (k importance
    draws); gate: a scene is searched when the amortised reconstruction leaves more ink than this unexplained
    within one window (unexplained_ink, in grey levels / 255 summed over the pixels); gate=-1 searches every
    scene. seed: the draws of the "iw" score. chunk: scenes refined together (memory)."""

    steps: int = 50
    lr: float = 0.03
    what_lr: float = 0.1
    proposals: tuple = ("guide", "kmeans")
    score: str = "means"
    k: int = 10
    gate: float = 9.0
    seed: int = 0
    chunk: int = 128

    def __post_init__(self):
        if self.score not in SCORES:
            raise ValueError(f"score: must be one of {', '.join(SCORES)}; got {self.score!r}")
        for name in ("steps", "k", "chunk"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < (0 if name == "steps" else 1):
                raise ValueError(f"{name}: must be a whole number of at least {0 if name == 'steps' else 1}, "
                                 f"got {getattr(self, name)!r}")
        for name in ("lr", "what_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        unknown = [kind for kind in self.proposals if kind not in PROPOSALS]
        if unknown or not self.proposals:
            raise ValueError(f"proposals: must be kinds of {', '.join(PROPOSALS)}, got {self.proposals!r}")


# --- which scenes to search ------------------------------------------------------------------------------------


def unexplained_ink(config, images, recon):
    """Per scene (B,), the most ink the reconstruction leaves unexplained within one square of the side of a
    window at the prior's mean scale: the positive part of image - recon, summed over the best-placed square
    (summed-area table). A window drawing two digits as one leaves such a blob; a good explanation does not."""
    side = typical_window(config)
    residual = numpy.clip(numpy.asarray(images, numpy.float64) - recon, 0.0, None)
    table = numpy.pad(numpy.cumsum(numpy.cumsum(residual, axis=1), axis=2), ((0, 0), (1, 0), (1, 0)))
    mass = table[:, side:, side:] - table[:, :-side, side:] - table[:, side:, :-side] + table[:, :-side, :-side]
    return mass.max(axis=(1, 2))


def typical_window(config):
    """The side in whole pixels of a window at the prior's mean log s (where_prior_mean, or for a point z_where
    the guide's initial where_log_scale_init), at most the canvas."""
    log_scale = config.where_prior_mean[0] if config.z_where == "stochastic" else config.where_log_scale_init
    box = window_boxes(numpy.array(log_scale), numpy.zeros(2), config.canvas_size, config.window_size)
    return int(min(config.canvas_size, max(1, round(float(box[2] - box[0])))))


def gated(config, images, amortised, options):
    """The indices of the scenes `options` sends to the search: unexplained_ink above options.gate."""
    return numpy.flatnonzero(unexplained_ink(config, images, amortised["recon"]) > options.gate)


# --- proposals -------------------------------------------------------------------------------------------------


def _ink_points(image, box=None):
    """(coordinates (m, 2) x, y in pixels, weights (m,)) of the inked pixels of `image`, within box if given."""
    ys, xs = numpy.nonzero(image > 0.05)
    weights = image[ys, xs].astype(numpy.float64)
    points = numpy.stack([xs, ys], axis=1).astype(numpy.float64) + 0.5  # pixel centres, edges at integers
    if box is not None:
        x0, y0, x1, y1 = box
        inside = (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
        points, weights = points[inside], weights[inside]
    return points, weights


def _cluster_boxes(points, weights, labels, k):
    """Square boxes (k, 4) around each cluster of ink: centred on its weighted mean, side 3.5 of its largest sd."""
    boxes = []
    for j in range(k):
        w = weights[labels == j]
        if w.sum() <= 0:
            return None
        p = points[labels == j]
        centre = (w[:, None] * p).sum(axis=0) / w.sum()
        sd = numpy.sqrt((w[:, None] * (p - centre) ** 2).sum(axis=0) / w.sum())
        half = max(1.75 * sd.max(), 3.0)
        boxes.append([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
    return numpy.array(boxes)


def kmeans_boxes(points, weights, k, iterations=10, across=False):
    """Boxes (k, 4) on a weighted k-means of ink coordinates, started from k points spread along the ink's main
    axis (or, across=True, along the axis at right angles to it); None if there is too little ink."""
    if len(points) < 2 * k or k < 1:
        return None
    centre = (weights[:, None] * points).sum(axis=0) / weights.sum()
    spread = (weights[:, None, None] * numpy.einsum("mi,mj->mij", points - centre, points - centre)).sum(axis=0)
    axis = numpy.linalg.eigh(spread)[1][:, 0 if across else -1]
    along = (points - centre) @ axis
    means = numpy.array([points[numpy.argmin(numpy.abs(along - q))] for q in
                         numpy.quantile(along, (numpy.arange(k) + 0.5) / k)])
    for _ in range(iterations):
        labels = numpy.argmin(((points[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
        for j in range(k):
            w = weights[labels == j]
            if w.sum() > 0:
                means[j] = (w[:, None] * points[labels == j]).sum(axis=0) / w.sum()
    return _cluster_boxes(points, weights, labels, k)


def residual_box(image, recon, side):
    """A square box of `side` px centred on the largest blob of ink the reconstruction leaves unexplained."""
    residual = numpy.clip(image - recon, 0.0, None)
    size = residual.shape[0]
    half = max(1, int(side // 3))
    padded = numpy.pad(numpy.cumsum(numpy.cumsum(residual, axis=0), axis=1), ((1, 0), (1, 0)))
    lo = numpy.clip(numpy.arange(size) - half, 0, size)
    hi = numpy.clip(numpy.arange(size) + half + 1, 0, size)
    mass = padded[hi[:, None], hi[None, :]] - padded[lo[:, None], hi[None, :]] - padded[hi[:, None], lo[None, :]] \
        + padded[lo[:, None], lo[None, :]]
    y, x = numpy.unravel_index(numpy.argmax(mass), mass.shape)
    return numpy.array([x + 0.5 - side / 2, y + 0.5 - side / 2, x + 0.5 + side / 2, y + 0.5 + side / 2])


def proposals(config, image, amortised, n, counts, kinds=PROPOSALS):
    """The starting explanations of one scene, of the kinds named (PROPOSALS; the empty scene for count 0 always):
    a list of (count, where (count, 3), what (count, D) or None, kind), None where the glimpse encoder (or the
    prior mean) is to describe a window. `amortised` holds this scene's guide answer: the guide's latents of every
    step, z_where (T, 3) and z_what (T, D), and its reconstruction; n is its count."""
    size, p = config.canvas_size, config.window_size
    where, what = amortised["z_where"], amortised["z_what"]
    boxes = window_boxes(where[:, 0], where[:, 1:], size, p)
    points, weights = _ink_points(image)
    out = []

    def add(kind, count, boxes_or_where, whats=None, as_boxes=True):
        if boxes_or_where is None or kind not in kinds:
            return
        w = _where_of_boxes(boxes_or_where, config) if as_boxes else boxes_or_where
        out.append((count, w, whats, kind))

    for m in counts:
        if m == 0:
            out.append((0, numpy.zeros((0, 3)), numpy.zeros((0, config.what_dim)), "empty"))
            continue
        add("guide", m, where[:m], what[:m], as_boxes=False)  # the guide's first m steps
        add("kmeans", m, kmeans_boxes(points, weights, m))
        if m >= 2 and "across" in kinds:
            add("across", m, kmeans_boxes(points, weights, m, across=True))
        if m == n + 1:
            for j in range(n):  # split window j along its ink's main axis
                halves = kmeans_boxes(*_ink_points(image, boxes[j]), 2) if "split" in kinds else None
                if halves is not None:
                    add("split", m, numpy.concatenate([numpy.delete(boxes[:n], j, axis=0), halves]))
            side = float(numpy.mean(boxes[:max(n, 1), 2] - boxes[:max(n, 1), 0]))
            if "residual" in kinds:
                add("residual", m, numpy.concatenate([boxes[:n], residual_box(image, amortised["recon"], side)[None]]))
        if m == n - 1 and n >= 2:
            for j in range(n):  # drop window j
                add("drop", m, numpy.delete(where[:n], j, axis=0), numpy.delete(what[:n], j, axis=0), as_boxes=False)
            for i in range(n):  # merge windows i and j into one covering both
                for j in range(i + 1, n):
                    union = numpy.concatenate([boxes[[i, j], :2].min(axis=0), boxes[[i, j], 2:].max(axis=0)])
                    add("merge", m, numpy.concatenate([numpy.delete(boxes[:n], [i, j], axis=0), union[None]]))
    return out


def _where_of_boxes(boxes, config):
    """z_where (k, 3) of the windows covering square boxes (k, 4), log s kept in log_scale_range."""
    log_scale, shift = box_where(boxes, config.canvas_size, config.window_size)
    log_scale = numpy.clip(log_scale, *config.log_scale_range)
    return numpy.concatenate([log_scale[:, None], shift], axis=1)


# --- refinement and scores -------------------------------------------------------------------------------------


def refine(params, config, images, where, what, options):
    """(where, what) after options.steps Adam steps of ascent on air.density.objects_log_joint, every row at once."""
    r, k, d = what.shape
    cut = r * k * 3
    dtype = numpy.dtype(config.dtype)

    def negative(flat):
        return -np.sum(objects_log_joint(params, config, images, flat[:cut].reshape(r, k, 3),
                                         flat[cut:].reshape(r, k, d)))

    gradient = autograd.grad(negative)
    state = adam_init(numpy.concatenate([where.reshape(-1), what.reshape(-1)]).astype(dtype))
    rates = numpy.concatenate([numpy.full(cut, options.lr, dtype), numpy.full(r * k * d, options.what_lr, dtype)])
    for _ in range(options.steps):
        state = adam_update(state, gradient(state["params"]), rates)
    flat = state["params"]
    return flat[:cut].reshape(r, k, 3), flat[cut:].reshape(r, k, d)


def score(params, config, images, where, what, what_logvar, where_logsd, options, rng):
    """Per row (R,), the estimate of log p(x | n) = log p(x, n) - log p(n) that options.score names, around the
    latents (where, what) (R, K, ...) with the Gaussian spreads what_logvar (R, K, D) and where_logsd (R, K, 3):
    the ELBO of that Gaussian with the likelihood at its mean (air.density.elbo_at_means), or the log of the mean
    of k importance weights p(x, z) / q(z), z ~ q."""
    if options.score == "means":
        return numpy.asarray(elbo_at_means(params, config, images, where, what, what_logvar, where_logsd))
    stochastic = config.z_where == "stochastic"
    r, k, d = what.shape
    draws = []
    per_pass = max(1, min(options.k, IW_ROWS // max(r, 1)))
    for start in range(0, options.k, per_pass):
        j = min(per_pass, options.k - start)
        tile = lambda a: numpy.tile(a, (j, 1, 1))
        # One draw of the noise per j for every row (common random numbers across a scene's explanations).
        eps_what = numpy.repeat(rng.standard_normal((j, 1, k, d)), r, axis=1).astype(what.dtype)
        z = (what + numpy.exp(0.5 * what_logvar) * eps_what).reshape(j * r, k, d)
        log_q = numpy.sum(log_normal(z, tile(what), tile(what_logvar)), axis=(1, 2))
        w = tile(where)
        if stochastic:
            eps_where = numpy.repeat(rng.standard_normal((j, 1, k, 3)), r, axis=1).astype(where.dtype)
            w = (where + numpy.exp(where_logsd) * eps_where).reshape(j * r, k, 3)
            log_q = log_q + numpy.sum(log_normal(w, tile(where), tile(2.0 * where_logsd)), axis=(1, 2))
        log_p = numpy.asarray(objects_log_joint(params, config, numpy.tile(images, (j, 1, 1)), w, z))
        draws.append((log_p - log_q).reshape(j, r))
    draws = numpy.concatenate(draws, axis=0).T  # (R, k)
    top = draws.max(axis=1)
    return top + numpy.log(numpy.mean(numpy.exp(draws - top[:, None]), axis=1))


# --- the search ------------------------------------------------------------------------------------------------


def search(params, config, images, amortised, options=Search(), rng=None):
    """The searched explanation of images (B, H, W) given the guide's amortised answer (air.infer's count, z_where,
    z_what and recon, with guide_spreads' what_logvar and, for a stochastic z_where, where_logsd): a dict with count
    (B,), z_where (B, T, 3), z_what (B, T, D) (absent steps zero), margin (B,), the chosen count's score minus the
    best other count's, in nats, scores (B, T + 1), each count's best score (-inf where none was tried), and kind
    (B,), the kind of proposal the chosen explanation started from."""
    t, d = config.max_steps, config.what_dim
    rng = numpy.random.default_rng(options.seed) if rng is None else rng
    log_prior_count = numpy.log(prior_count_probs(at_end(config).pres_prior))
    b = len(images)
    out = {"count": numpy.zeros(b, numpy.int64), "z_where": numpy.zeros((b, t, 3), config.dtype),
           "z_what": numpy.zeros((b, t, d), config.dtype), "margin": numpy.zeros(b),
           "scores": numpy.full((b, t + 1), -numpy.inf), "kind": numpy.full(b, "", dtype=object)}
    for start in range(0, b, options.chunk):
        rows = numpy.arange(start, min(b, start + options.chunk))
        _search_chunk(params, config, images, amortised, rows, options, rng, log_prior_count, out)
    return out


def _search_chunk(params, config, images, amortised, rows, options, rng, log_prior_count, out):
    t, d = config.max_steps, config.what_dim
    dtype = numpy.dtype(config.dtype)
    hyps = []  # (scene, count, where, what or None, kind)
    for i in rows:
        n = int(amortised["count"][i])
        counts = [m for m in (n - 1, n, n + 1) if 0 <= m <= t]
        scene = {key: amortised[key][i] for key in ("z_where", "z_what", "recon")}
        hyps += [(i, m, w, z, kind) for m, w, z, kind in proposals(config, images[i], scene, n, counts,
                                                                     options.proposals)]
    best = {}  # scene -> (value, count, where, what, kind) of its best explanation so far
    for m in sorted({h[1] for h in hyps}):
        group = [h for h in hyps if h[1] == m]
        owner = numpy.array([h[0] for h in group])
        frames = images[owner].astype(dtype)
        if m == 0:
            empty = -negative_log_likelihood(numpy.sum(frames.reshape(len(frames), -1) ** 2, axis=1), config)
            values = empty + log_prior_count[0]
            where, what = numpy.zeros((len(group), 0, 3), dtype), numpy.zeros((len(group), 0, d), dtype)
        else:
            where = numpy.stack([h[2] for h in group]).astype(dtype)
            what = numpy.zeros((len(group), m, d), dtype)
            given = numpy.array([h[3] is not None for h in group])
            if given.any():
                what[given] = numpy.stack([h[3] for h in group if h[3] is not None])
            if (~given).any() and config.object_encoder == "glimpse":
                what[~given] = _glimpses(params, config, frames[~given], where[~given])[0]
            where, what = refine(params, config, frames, where, what, options)
            what_logvar, where_logsd = _spreads(params, config, frames, where, amortised, owner)
            values = score(params, config, frames, where, what, what_logvar, where_logsd, options, rng) \
                + log_prior_count[m]
        for j, i in enumerate(owner):
            out["scores"][i, m] = max(out["scores"][i, m], values[j])
            if i not in best or values[j] > best[i][0]:
                best[i] = (values[j], m, where[j], what[j], group[j][4])
    for i, (value, m, where, what, kind) in best.items():
        out["count"][i], out["kind"][i] = m, kind
        out["z_where"][i, :m], out["z_what"][i, :m] = where, what
        others = numpy.delete(out["scores"][i], m)
        out["margin"][i] = value - (others.max() if numpy.isfinite(others).any() else -numpy.inf)


def _glimpses(params, config, frames, where):
    """z_what's posterior (mean, log-variance), each (R, K, D), from the glimpse encoder at every window of where
    (R, K, 3), cropped from frames (R, H, W)."""
    r, k, _ = where.shape
    mean, logvar = glimpse_posterior(params, config, numpy.repeat(frames, k, axis=0),
                                     numpy.clip(where[..., 0], *config.log_scale_range).reshape(r * k),
                                     where[..., 1:].reshape(r * k, 2))
    shape = (r, k, config.what_dim)
    return numpy.asarray(mean).reshape(shape), numpy.asarray(logvar).reshape(shape)


def _spreads(params, config, frames, where, amortised, owner):
    """The Gaussian spreads of the scores: z_what's log-variance (R, K, D) from the glimpse encoder at the refined
    windows (or the guide's step 0 without one), z_where's log sd (R, K, 3) from the guide's first step."""
    r, k, _ = where.shape
    if config.object_encoder == "glimpse":
        what_logvar = _glimpses(params, config, frames, where)[1]
    else:
        what_logvar = numpy.repeat(amortised["what_logvar"][owner, :1], k, axis=1)
    where_logsd = numpy.zeros((r, k, 3), frames.dtype)
    if "where_logsd" in amortised:
        where_logsd = numpy.repeat(amortised["where_logsd"][owner, :1], k, axis=1)
    return what_logvar, where_logsd


def guide_spreads(params, config, images):
    """The guide's what_logvar (B, T, D) and, for a stochastic z_where, where_logsd (B, T, 3) at its means."""
    post = guide(params, config, numpy.asarray(images, dtype=config.dtype))
    out = {"what_logvar": numpy.asarray(post["what_logvar"])}
    if config.z_where == "stochastic":
        out["where_logsd"] = numpy.asarray(post["where_logsd"])
    return out

