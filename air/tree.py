"""Parameter pytrees (nested dicts and lists of arrays) and their flat-vector form.

autograd differentiates with respect to a pytree by accumulating every leaf's gradient into zeros of
its container, once per level of nesting. Training therefore differentiates with respect to one flat
vector, which `Layout.unflatten` cuts into the nested dict with a single `np.split` (autograd's backward
of a split is one concatenate). Adam then runs on flat vectors too.
"""
import autograd.numpy as np
import numpy


def leaves(tree, prefix=""):
    """[(path, array)] in a fixed order: dict keys sorted, list items in order; paths like 'encoder/0/w'."""
    if isinstance(tree, dict):
        return [item for key in sorted(tree) for item in leaves(tree[key], f"{prefix}{key}/")]
    if isinstance(tree, (list, tuple)):
        return [item for i, value in enumerate(tree) for item in leaves(value, f"{prefix}{i}/")]
    return [(prefix[:-1], tree)]


def _rebuild(skeleton, values):
    """The tree shaped like `skeleton` with its leaves taken in order from the iterator `values`."""
    if isinstance(skeleton, dict):
        return {key: _rebuild(skeleton[key], values) for key in sorted(skeleton)}
    if isinstance(skeleton, (list, tuple)):
        return [_rebuild(value, values) for value in skeleton]
    return next(values)


def tree_map(fn, tree, *others):
    """Apply fn leaf-wise to trees of the same structure."""
    if isinstance(tree, dict):
        return {key: tree_map(fn, tree[key], *(o[key] for o in others)) for key in tree}
    if isinstance(tree, (list, tuple)):
        return [tree_map(fn, value, *(o[i] for o in others)) for i, value in enumerate(tree)]
    return fn(tree, *others)


class Layout:
    """The shapes and order of a pytree's leaves: flatten to one vector and back."""

    def __init__(self, tree):
        self.skeleton = tree_map(lambda leaf: None, tree)
        self.paths, arrays = zip(*leaves(tree))
        self.shapes = [numpy.shape(a) for a in arrays]
        self.cuts = numpy.cumsum([int(numpy.prod(s)) for s in self.shapes])[:-1]

    def flatten(self, tree):
        """One vector holding every leaf (a copy)."""
        return numpy.concatenate([numpy.ravel(a) for _, a in leaves(tree)])

    def unflatten(self, vector):
        """The pytree whose leaves are reshaped pieces of `vector` (views; differentiable by autograd)."""
        pieces = np.split(vector, self.cuts)
        # Autograd records a reshape even when the shape does not change; 1-D leaves (biases) skip it.
        leaves = (p if len(s) == 1 else p.reshape(s) for p, s in zip(pieces, self.shapes))
        return _rebuild(self.skeleton, leaves)


def nest(flat, prefix=""):
    """leaves inverted: nested dicts and lists rebuilt from a {path: array} dict, the paths that start with prefix."""
    root = {}
    for key, value in flat.items():
        if not key.startswith(prefix):
            continue
        *parents, last = key[len(prefix):].split("/")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return _lists(root)


def _lists(node):
    """Dicts whose keys are 0..n-1 become lists (the encoder and decoder layer stacks)."""
    if not isinstance(node, dict):
        return node
    node = {k: _lists(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node) and sorted(map(int, node)) == list(range(len(node))):
        return [node[str(i)] for i in range(len(node))]
    return node
