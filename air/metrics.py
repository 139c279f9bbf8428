"""Scores of a scene interpretation against the ground truth: counts, reconstructions, boxes."""
import itertools
import time

import numpy as np

from air.model import infer


def count_scores(true_counts, pred_counts, n_true, n_pred):
    """Count accuracy, per-true-count accuracy (NaN where a count never occurs) and the confusion matrix.

    confusion[i][j] is the number of scenes with i digits that the model counted as j; rows 0..n_true-1,
    columns 0..n_pred-1.
    """
    true_counts, pred_counts = np.asarray(true_counts), np.asarray(pred_counts)
    confusion = np.zeros((n_true, n_pred), dtype=np.int64)
    np.add.at(confusion, (true_counts, np.minimum(pred_counts, n_pred - 1)), 1)
    totals = confusion.sum(axis=1)
    hits = np.array([confusion[i, i] if i < n_pred else 0 for i in range(n_true)])
    per_class = np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)
    return {
        "count_acc": float(np.mean(true_counts == pred_counts)) if len(true_counts) else float("nan"),
        "per_class_acc": [float(a) for a in per_class],
        "confusion": confusion.tolist(),
    }


def box_iou(a, b):
    """Intersection over union of (..., 4) boxes (x0, y0, x1, y1)."""
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


def matched_box_iou(pred_boxes, pred_counts, true_boxes, true_counts):
    """Mean IoU between each true digit box and the present step matched to it (the best one-to-one matching).

    Scored over the digits of scenes whose count the model got right (elsewhere a matching is undefined);
    NaN if there are none.
    """
    scores = []
    for boxes, n, truth, m in zip(pred_boxes, pred_counts, true_boxes, true_counts):
        if n != m or m == 0:
            continue
        ious = box_iou(truth[:m, None, :], boxes[None, :n, :])  # (true digit, present step)
        best = max(sum(ious[i, j] for i, j in enumerate(order)) for order in itertools.permutations(range(n)))
        scores.append(best / m)
    return float(np.mean(scores)) if scores else float("nan")


def evaluate(params, config, scenes):
    """Every score of `params` on `scenes` (an air.data.Scenes): counts, recon MSE and box IoU."""
    out = infer(params, config, scenes.images)
    scores = count_scores(scenes.counts, out["count"], config_max_digits(config, scenes) + 1, config.max_steps + 1)
    scores["recon_mse"] = float(np.mean((out["recon"] - scenes.images) ** 2))
    scores["box_iou"] = matched_box_iou(out["boxes"], out["count"], scenes.boxes, scenes.counts)
    scores["mean_pres_prob"] = out["pres_prob"].mean(axis=0).tolist()
    scores["mean_scale"] = np.exp(out["z_where"][..., 0]).mean(axis=0).tolist()
    return scores


def family_scores(params, config, scenes):
    """The scores a comparison of scene families reports (compare.csv, a shipped model's card) of `params` on
    `scenes`: the family's digit sides ("12-16", on 32 px; "pyro" for Pyro's generator's), the scene count, count
    accuracy and its binomial standard
    error, accuracy per count 0-2 (NaN for a count that is missing), the shares of two-digit scenes counted as one
    (merged) and as three or more (split), and the box IoU."""
    s = evaluate(params, config, scenes)
    confusion = np.asarray(s["confusion"])
    acc, n = s["count_acc"], len(scenes)
    two = confusion[2].sum() if len(confusion) > 2 else 0
    share = lambda cols: float(confusion[2, cols].sum() / two) if two else float("nan")
    per = s["per_class_acc"] + [float("nan")] * 3
    sides = "pyro" if config.scene_family == "pyro" else "-".join(str(v) for v in config.digit_size)
    return {"digit_size": sides, "n_test": n, "count_acc": acc,
            "stderr": float(np.sqrt(acc * (1 - acc) / n)), "acc_0": per[0], "acc_1": per[1], "acc_2": per[2],
            "merged_two": share(1), "split_two": share(slice(3, None)), "box_iou": s["box_iou"]}


def config_max_digits(config, scenes):
    """The largest count the confusion matrix needs a row for."""
    return max(config.max_digits, int(scenes.counts.max()) if len(scenes) else 0)


def search_scores(params, config, scenes, options):
    """(scores, out): the count accuracy of air.infer with search=options on `scenes` beside the guide's own, and
    infer's output. scores: count_acc (searched) and amortised_acc with their binomial standard errors, fixed and
    broken (scenes the search made right and wrong), searched_share (scenes gated to the search), the searched
    counts' confusion matrix, and seconds (process time of the whole call, guide included) and ms_per_scene."""
    start = time.process_time()
    out = infer(params, config, scenes.images, search=options)
    seconds = time.process_time() - start
    n = len(scenes)
    right, before = out["count"] == scenes.counts, out["amortised_count"] == scenes.counts
    acc, amortised = float(np.mean(right)), float(np.mean(before))
    stderr = lambda a: float(np.sqrt(a * (1 - a) / n))
    confusion = count_scores(scenes.counts, out["count"], config_max_digits(config, scenes) + 1,
                             config.max_steps + 1)["confusion"]
    scores = {"count_acc": acc, "stderr": stderr(acc), "amortised_acc": amortised,
              "amortised_stderr": stderr(amortised),
              "fixed": int(np.sum(right & ~before)), "broken": int(np.sum(before & ~right)),
              "searched_share": float(np.mean(out["searched"])), "confusion": confusion, "seconds": seconds,
              "ms_per_scene": 1000.0 * seconds / max(n, 1), "n_scenes": n}
    return scores, out
