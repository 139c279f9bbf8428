"""The seed's negative ELBO with Gumbel-sigmoid z_pres, as a deterministic function of its noise.

    L = recon_weight * sum_pixels (recon - x)^2                       (= 1024 * MSE on a 32x32 canvas)
      + kl_what_weight * sum_t KL( N(mu_t, exp(lv_t)) || N(0, I) )
      + kl_pres_weight * sum_t KL( Bern(sigmoid(logit_t)) || Bern(p_t) )

averaged over the batch. z_pres_t = sigmoid((logit_t + g_t) / temperature) with logistic noise g_t
(the binary Concrete / Gumbel-sigmoid relaxation, Maddison et al. 2017, Jang et al. 2017), and step t
is gated by z_pres_1 ... z_pres_t. All randomness comes in through `noise`, drawn outside by
`sample_noise`, so `loss` can be checked against finite differences.
"""
import autograd.numpy as np
import numpy

from air.model import compose, encode, render
from air.nn import log_sigmoid


def sample_noise(rng, config, batch_size):
    """All randomness of one loss evaluation: what (B, T, D) standard normal, gumbel (B, T) logistic."""
    dtype = numpy.dtype(config.dtype)
    t, d = config.max_steps, config.what_dim
    # Uniforms kept off 0 and 1 (as the seed does) so the logistic noise stays finite.
    u = rng.uniform(1e-6, 1.0 - 1e-6, size=(batch_size, t))
    return {
        "what": rng.standard_normal((batch_size, t, d)).astype(dtype),
        "gumbel": (numpy.log(u) - numpy.log1p(-u)).astype(dtype),
    }


def elbo_terms(params, images, noise, config, temperature):
    """Batch means of the three terms of the negative ELBO: a dict with recon, kl_what, kl_pres."""
    b = images.shape[0]
    post = encode(params, config, images)
    mean, logvar, logit = post["what_mean"], post["what_logvar"], post["pres_logit"]

    z_what = mean + np.exp(0.5 * logvar) * noise["what"]
    # Cumulative presence as exp(cumsum(log z_pres)): stable where a z_pres underflows, and one op cheaper
    # under autograd than a cumulative product.
    gates = np.exp(np.cumsum(log_sigmoid((logit + noise["gumbel"]) / temperature), axis=1))
    recon = compose(gates, render(params, config, z_what, post["log_scale"], post["shift"]))

    kl_what = 0.5 * np.sum(mean * mean + np.exp(logvar) - logvar - 1.0)
    log_q, log_not_q = log_sigmoid(logit), log_sigmoid(-logit)
    prior = numpy.asarray(config.pres_prior, dtype=config.dtype)
    kl_pres = np.sum(np.exp(log_q) * (log_q - numpy.log(prior)) + np.exp(log_not_q) * (log_not_q - numpy.log1p(-prior)))
    return {"recon": np.sum((recon - images) ** 2) / b, "kl_what": kl_what / b, "kl_pres": kl_pres / b}


def combine(terms, config, kl_scale=1.0):
    """The weighted sum of elbo_terms; kl_scale multiplies both KL weights (the seed's KL warm-up)."""
    return (config.recon_weight * terms["recon"]
            + kl_scale * (config.kl_what_weight * terms["kl_what"] + config.kl_pres_weight * terms["kl_pres"]))


def loss(params, images, noise, config, temperature, kl_scale=1.0):
    """The batch-mean negative ELBO (a scalar), deterministic in all its arguments."""
    return combine(elbo_terms(params, images, noise, config, temperature), config, kl_scale)
