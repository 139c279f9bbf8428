"""Attend, Infer, Repeat (Eslami et al., NIPS 2016) on Multi-MNIST, differentiated end to end by autograd.

The pinned public API: Config, preset, init_params, sample_noise, loss, elbo_terms, infer, evidence,
load_checkpoint, pretrained.
"""
from air.checkpoint import load_checkpoint
from air.config import Config, ConfigError, preset
from air.marginal import evidence
from air.model import infer, init_params
from air.objective import elbo_terms, loss, sample_noise
from air.shipped import pretrained

__all__ = ["Config", "ConfigError", "preset", "init_params", "sample_noise", "loss", "elbo_terms", "infer",
           "evidence", "load_checkpoint", "pretrained"]
