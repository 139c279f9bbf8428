"""air.optim's Adam against the textbook update, and air.schedules' values at the steps where an off-by-one shows:
the first and last steps, the epoch boundaries of the KL warm-up, the ends of the prior's hold and anneal."""
import dataclasses

import numpy as np
import pytest

import air
from air import schedules
from air.optim import adam_init, adam_update


def textbook_adam(params, grads_per_step, lr, betas, eps):
    """Kingma & Ba (2015), Algorithm 1, as printed: bias-corrected moments, then the step. float64 throughout."""
    b1, b2 = betas
    p, m, v = params.copy(), np.zeros_like(params), np.zeros_like(params)
    trajectory = []
    for t, g in enumerate(grads_per_step, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        trajectory.append((p, m, v))
    return trajectory


@pytest.mark.parametrize("per_parameter_lr, betas, eps", [(False, (0.9, 0.999), 1e-8), (True, (0.8, 0.99), 1e-6)])
def test_adam_update_equals_the_textbook_update(per_parameter_lr, betas, eps):
    """Six steps from zero. adam_update folds the bias corrections into its step size and epsilon, which is the same
    update up to rounding, so the parameters agree to 1e-12; a bias correction at step t +- 1 is off by far more.
    Gradients span 1e-10..1 (so epsilon matters for some), keep one sign per parameter (no cancellation in the sum
    of steps), and the vector crosses the 32768-element block adam_update works in, with lr's entries with it."""
    rng = np.random.default_rng(0)
    n = 70_000
    base = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-10, 0, n)
    grads = [base * rng.uniform(0.5, 1.5, n) for _ in range(6)]
    lr = rng.uniform(1e-3, 1e-1, n) if per_parameter_lr else 0.01
    state = adam_init(np.zeros(n))
    for t, (g, (p, m, v)) in enumerate(zip(grads, textbook_adam(np.zeros(n), grads, lr, betas, eps)), start=1):
        state = adam_update(state, g, lr, betas, eps)
        assert state["step"] == t
        np.testing.assert_allclose(state["m"], m, rtol=1e-14, atol=0, err_msg=f"m at step {t}")
        np.testing.assert_allclose(state["v"], v, rtol=1e-14, atol=0, err_msg=f"v at step {t}")
        np.testing.assert_allclose(state["params"], p, rtol=1e-12, atol=0, err_msg=f"params at step {t}")


def test_adam_update_takes_the_learning_rate_per_parameter():
    """An array lr scales each parameter's step by its own rate: the steps of lr = r and of lr = 1 differ by r."""
    rng = np.random.default_rng(1)
    g, rates = rng.normal(size=(2, 3, 5))
    one = adam_update(adam_init(np.zeros((3, 5))), g, 1.0)["params"]
    each = adam_update(adam_init(np.zeros((3, 5))), g, rates)["params"]
    np.testing.assert_allclose(each, rates * one, rtol=1e-15)


@pytest.fixture
def config():
    """4 steps an epoch (64 scenes, batch 16), 4 epochs: 16 steps, the last one step 15."""
    return dataclasses.replace(air.preset("seed"), n_train=64, batch_size=16, n_epochs=4, dtype="float64")


def test_temperature_runs_from_temp_start_at_the_first_step_to_temp_end_at_the_last(config):
    assert (config.temp_start, config.temp_end) == (1.0, 0.2)
    assert schedules.temperature(config, 0, 13) == 1.0
    assert schedules.temperature(config, 6, 13) == pytest.approx(0.6, rel=1e-12)  # halfway: steps 0..12
    assert schedules.temperature(config, 12, 13) == pytest.approx(0.2, rel=1e-12)
    values = [schedules.temperature(config, s, 13) for s in range(13)]
    np.testing.assert_allclose(np.diff(values), -0.8 / 12, rtol=1e-9)  # linear
    assert schedules.temperature(config, 0, 1) == 1.0  # a one-step run stays at its start


@pytest.mark.parametrize("warmup, per_epoch", [
    (2, [1 / 2, 1, 1, 1]),  # the seed's: (epoch + 1) / 2, the first epoch at half weight
    (3, [1 / 3, 2 / 3, 1, 1]),  # 1 from epoch kl_warmup_epochs - 1 (0-based), i.e. the 3rd, on
    (1, [1, 1, 1, 1]),
    (0, [1, 1, 1, 1]),  # no warm-up
])
def test_kl_scale_is_epoch_plus_one_over_the_warmup_for_every_step_of_the_epoch(config, warmup, per_epoch):
    config = dataclasses.replace(config, kl_warmup_epochs=warmup)
    got = [schedules.kl_scale(config, step) for step in range(16)]
    assert got == pytest.approx([v for v in per_epoch for _ in range(4)], rel=1e-15), "one value per epoch of 4 steps"


def test_at_step_gives_every_schedule_at_the_start_the_boundaries_and_the_end(config):
    """Cosine learning rate to 0.1, a KL warm-up of 2 epochs, a geometric prior 0.9 -> 1e-4 held for the first
    quarter (steps 0..4) and annealed over the next half (steps 4..12)."""
    config = dataclasses.replace(config, lr_schedule="cosine", lr_final=0.1, count_prior="geometric",
                                 prior_start=0.9, prior_end=1e-4, prior_hold=0.25, prior_anneal=0.5)
    expected = {  # step: (temperature, lr_factor, kl_scale, rho)
        0: (1.0, 1.0, 0.5, 0.9),
        3: (1.0 - 0.8 * 3 / 15, 0.1 + 0.45 * (1 + np.cos(np.pi * 3 / 15)), 0.5, 0.9),  # the first epoch's last step
        4: (1.0 - 0.8 * 4 / 15, 0.1 + 0.45 * (1 + np.cos(np.pi * 4 / 15)), 1.0, 0.9),  # the hold's end
        8: (1.0 - 0.8 * 8 / 15, 0.1 + 0.45 * (1 + np.cos(np.pi * 8 / 15)), 1.0, np.sqrt(0.9 * 1e-4)),  # halfway
        12: (1.0 - 0.8 * 12 / 15, 0.1 + 0.45 * (1 + np.cos(np.pi * 12 / 15)), 1.0, 1e-4),  # the anneal's end
        15: (0.2, 0.1, 1.0, 1e-4),  # the last step
    }
    for step, (temperature, lr_factor, kl_scale, rho) in expected.items():
        values = schedules.at_step(config, step, 16)
        assert values.temperature == pytest.approx(temperature, rel=1e-12), step
        assert values.lr_factor == pytest.approx(lr_factor, rel=1e-12), step
        assert values.kl_scale == kl_scale, step
        assert values.pres_prior == pytest.approx((rho,) * 3, rel=1e-12), step
    assert schedules.pres_prior(config, 5, 16)[0] < 0.9  # the anneal starts right after the hold
    assert schedules.at_end(config) == schedules.at_step(config, 15, 16)  # the last of its 16 steps


def test_a_schedule_is_required_to_be_one():
    """The loss took a bare temperature before it took a Schedule: passing one now says what to pass instead."""
    import air
    config = air.preset("seed")
    with pytest.raises(TypeError, match="air.schedules.Schedule"):
        schedules.require(0.5, config)
    assert schedules.require(None, config) == schedules.at_end(config)
    end = schedules.at_end(config)
    assert end.temperature == pytest.approx(config.temp_end, rel=1e-12)
    assert (end.kl_scale, end.pres_prior) == (1.0, config.pres_prior)
