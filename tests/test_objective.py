"""The objective's terms against direct formulas, and the presence decision rules."""
import dataclasses

import autograd
import numpy as np
import pytest

import air
from air.model import encode, head_columns, present_steps


@pytest.fixture
def setting():
    config = dataclasses.replace(air.preset("seed"), dtype="float64")
    rng = np.random.default_rng(11)
    params = air.init_params(rng, config)
    images = rng.random((5, 32, 32))
    noise = air.sample_noise(rng, config, 5)
    return config, params, images, noise


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_presence_kl_equals_the_bernoulli_kl(setting, direction):
    config, params, images, noise = setting
    config = dataclasses.replace(config, pres_kl=direction)
    q = sigmoid(encode(params, config, images)["pres_logit"])
    p = np.array(config.pres_prior)
    kl = lambda a, b: a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b))
    expected = (kl(q, p) if direction == "forward" else kl(p, q)).sum() / len(images)
    assert air.elbo_terms(params, images, noise, config, 0.5)["kl_pres"] == pytest.approx(expected, rel=1e-12)


def test_reverse_kl_gradient_is_the_seeds_q_minus_p(setting):
    """The seed's hand-written backward applies (q - p) per presence logit; the reverse KL has that gradient."""
    config, params, images, noise = setting
    config = dataclasses.replace(config, pres_kl="reverse")
    kl_of_bias = lambda b: air.elbo_terms({**params, "heads": {**params["heads"], "b": b}}, images, noise, config,
                                          0.5)["kl_pres"]
    grad = autograd.grad(kl_of_bias)(params["heads"]["b"]).reshape(config.max_steps, -1)
    q = sigmoid(encode(params, config, images)["pres_logit"])
    expected = (q - np.array(config.pres_prior)).mean(axis=0)
    assert np.allclose(grad[:, head_columns(config)["pres_logit"]][:, 0], expected, rtol=1e-10, atol=1e-14)
    assert np.count_nonzero(grad[:, 1:]) == 0


def test_count_rules():
    logits = np.array([[2.0, 0.5, 3.0],    # all logits > 0; cumulative 0.88, 0.55, 0.53
                       [2.0, 0.1, 3.0],    # cumulative 0.88, 0.46: the posterior median is 1
                       [-1.0, 5.0, 5.0],   # the first step is absent: nothing after it counts
                       [0.5, -0.5, 4.0]])
    logit_rule = dataclasses.replace(air.preset("seed"), count_rule="logit")
    cumulative_rule = dataclasses.replace(air.preset("seed"), count_rule="cumulative")
    assert present_steps(logit_rule, logits).tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0], [1, 0, 0]]
    assert present_steps(cumulative_rule, logits).tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0], [1, 0, 0]]
    direct = np.cumprod(sigmoid(logits), axis=1) > 0.5
    assert np.array_equal(present_steps(cumulative_rule, logits), direct)


def test_string_fields_reject_unknown_values():
    with pytest.raises(air.ConfigError, match="count_rule: must be one of logit, cumulative"):
        dataclasses.replace(air.preset("seed"), count_rule="mode")
    with pytest.raises(air.ConfigError, match="pres_kl"):
        dataclasses.replace(air.preset("seed"), pres_kl="both")


def test_reverse_kl_loss_passes_the_gradient_check(setting):
    from autograd.test_util import check_grads
    config, params, images, noise = setting
    config = dataclasses.replace(config, pres_kl="reverse")
    np.random.seed(0)  # check_grads draws its directions from numpy's global generator
    check_grads(lambda p: air.loss(p, images, noise, config, 0.7), modes=["rev"], order=1)(params)
