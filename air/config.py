"""One frozen dataclass holds every number of a run; presets are named Configs.

The command line is generated from these fields (experiments/train.py), so a flag and a field can never
disagree: field `kl_what_weight` is flag `--kl-what-weight`.
"""
import dataclasses
import json
from dataclasses import dataclass, field


def option(default, help, **metadata):
    """A Config field: its default and its help text, which the command line's --help shows."""
    return field(default=default, metadata={"help": help, **metadata})


class ConfigError(ValueError):
    """A Config field holds an impossible value. `name` is the field, `problem` says what is wrong."""

    def __init__(self, name, problem):
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


@dataclass(frozen=True)
class Config:
    """Every number and choice of a run. The defaults are the seed's model and training; PRESETS name others."""

    # --- scenes -----------------------------------------------------------------------------------------------
    canvas_size: int = option(32, "side of the square scene, pixels")
    max_digits: int = option(2, "scenes hold 0..max_digits digits, the count uniform over that range")
    train_counts: tuple = option((), "counts of the training and validation scenes, drawn uniformly (empty: "
                                     "0..max_digits); test scenes always hold 0..max_digits", item=int)
    digit_size: tuple = option((12, 18), "smallest and largest digit side in pixels on a 32-px canvas; scales "
                                         "with the canvas")
    n_train: int = option(1500, "training scenes, built once from the training digit pool (with streaming "
                                "scenes: scenes per epoch)")
    n_val: int = option(300, "validation scenes (validation digit pool), scored every epoch for early stopping")
    n_test: int = option(1000, "test scenes (test digit pool, digits the model never saw), scored at the end")
    scenes: str = option("fixed", "training scenes: n_train built once (the seed), or fresh ones every batch",
                         choices=("fixed", "streaming"))
    overlap: str = option("allowed", "digits may cross (the seed), or are moved until their ink does not pile up "
                                     "(Pyro's scenes)", choices=("allowed", "rejected"))
    scene_family: str = option("own", "how scenes are drawn: the project's (digit_size, overlap), or exactly as "
                                      "Pyro's multi_mnist.py draws them (air.data.pyro: frames of int(28 / scale) "
                                      "px, scale ~ N(1.3, 0.1^2), the whole scene redrawn while ink piles above "
                                      "255; digit_size and overlap unused), the peers' benchmark",
                               choices=("own", "pyro"))
    eval_seed: int = option(1234, "seeds the validation and test scenes, so every training seed is scored on the "
                                  "same ones")

    # --- guide and generative model (Eslami et al. 2016, Sec. 2; air.guide, air.generative) ---------------------
    max_steps: int = option(3, "T, the number of attention steps (objects the model can explain)")
    inference: str = option("global", "the guide's network: an MLP and per-step heads (the seed), an LSTM over "
                                      "steps reading the image (AIR), or what earlier steps left unexplained (DAIR)",
                            choices=("global", "recurrent", "residual"))
    rnn_hidden: int = option(256, "LSTM width of the recurrent and residual inference networks")
    step_memory: str = option("lstm", "what a recurrent or residual step carries to the next: the LSTM's state "
                                      "and its latents (the paper's AIR), or nothing, so that a residual step "
                                      "decides from what is still unexplained alone", choices=("lstm", "none"))
    z_where: str = option("deterministic", "z_where as a point (the seed), or Gaussian with prior N(where_prior_mean, "
                                           "where_prior_sd^2) and its KL, weighted like z_what's",
                          choices=("deterministic", "stochastic"))
    where_prior_mean: tuple = option((-0.7, 0.0, 0.0), "prior mean of (log s, tx, ty) for a stochastic z_where")
    where_prior_sd: tuple = option((0.3, 0.6, 0.6), "prior standard deviation of (log s, tx, ty)")
    object_encoder: str = option("global", "z_what from the inference network's heads (the seed), or from a glimpse "
                                           "cropped at z_where (the paper)", choices=("global", "glimpse"))
    glimpse_hidden: int = option(200, "hidden width of the glimpse encoder MLP")
    encoder_hidden: tuple = option((200, 100), "widths of the encoder MLP, ReLU after each")
    what_dim: int = option(20, "size of z_what, the appearance code of one object")
    window_size: int = option(16, "side P of the decoded window that the transformer places on the canvas")
    decoder: str = option("mlp", "z_what -> window: an MLP (the seed), or a dense layer to a P/4 grid and two "
                                 "(upsample x2, 3x3 conv) stages", choices=("mlp", "conv"))
    decoder_hidden: int = option(100, "hidden width of the MLP decoder (and of the conv decoder's dense layer)")
    decoder_channels: tuple = option((32, 16), "conv decoder: channels of its P/4 grid and of its hidden P/2 grid")
    decoder_bias: float = option(-2.0, "initial output bias of the decoder: sigmoid(-2) ~ 0.12, a nearly dark window")
    where_log_scale_init: float = option(-0.7, "initial bias of log s: windows start at half the canvas (s = 0.5)")
    log_scale_range: tuple = option((-3.0, 1.5), "log s is clipped to this range before the transformer")
    scale_bound: str = option("clip", "how the guide keeps log s's location in log_scale_range: clipped (no gradient "
                                      "beyond the bounds), or squashed by a tanh centred in the range (near the "
                                      "identity inside, a gradient everywhere)", choices=("clip", "tanh"))
    what_logvar_range: tuple = option((-8.0, 4.0), "z_what's log-variance is clipped to this range")
    composition: str = option("sum", "the scene from the step canvases: their sum (the paper), or their pixelwise "
                                     "maximum, as the seed's scenes paste digits", choices=("sum", "max"))
    count_rule: str = option("logit", "infer's presence decision: own and earlier logits > 0, P(count > t) > 0.5, "
                                      "or the most probable count", choices=("logit", "cumulative", "mode"))

    # --- objective (air.objective, air.estimators) ---------------------------------------------------------------
    recon_weight: float = option(1.0, "weight of -log p(x | z) (the seed's: the sum of squared errors, 1024 * MSE "
                                      "on 32x32)")
    kl_what_weight: float = option(0.05, "weight of sum_t KL(q(z_what_t) || N(0, I)) (and of z_where's KL)")
    kl_pres_weight: float = option(0.3, "weight of the z_pres KL")
    pres_estimator: str = option("relaxed", "z_pres: Gumbel-sigmoid (the seed), the T + 1 counts summed out "
                                            "exactly, or binary samples with REINFORCE and NVIL's baseline",
                                 choices=("relaxed", "enumerate", "reinforce"))
    pres_floor: float = option(0.0, "z_pres posterior probabilities kept in [floor, 1 - floor], so no step is ever "
                                    "switched off for good")
    baseline_hidden: int = option(100, "hidden width of REINFORCE's baseline MLP")
    baseline_lr: float = option(1e-2, "Adam learning rate of the baseline (NVIL trains it faster than the model)")
    signal_norm: str = option("none", "REINFORCE's learning signal: raw, minus its running mean, or also divided by "
                                      "its running sd (NVIL)", choices=("none", "center", "running"))
    signal_decay: float = option(0.9, "decay of those running mean and variance")
    pres_kl: str = option("forward", "KL(q || p), the seed's stated ELBO, or KL(p || q), whose gradient q - p the "
                                     "seed's code applies", choices=("forward", "reverse"))
    pres_prior: tuple = option((0.5, 0.4, 0.2), "p_t, the prior probability that step t is present (one per step)")
    count_prior: str = option("independent", "the per-step pres_prior (the seed), or p(n) ~ rho^n with rho annealed",
                              choices=("independent", "geometric"))
    prior_start: float = option(0.99, "geometric prior: rho at the first step, held for the first prior_hold ...")
    prior_end: float = option(1e-5, "... annealed log-linearly to this value ...")
    prior_anneal: float = option(0.33, "... over this fraction of the training steps, then held")
    prior_hold: float = option(0.0, "fraction of the training steps at prior_start before the anneal")
    likelihood: str = option("sse", "-log p(x | z): the seed's sum of squared errors, or a Gaussian with sd "
                                    "likelihood_sd per pixel", choices=("sse", "gaussian"))
    likelihood_sd: float = option(0.3, "standard deviation of the Gaussian likelihood (0.3 in the paper's setups)")
    kl_warmup_epochs: int = option(2, "both KL weights ramp up linearly over this many epochs ((e + 1) / n)")
    temp_start: float = option(1.0, "Gumbel-sigmoid temperature at the first step ...")
    temp_end: float = option(0.2, "... annealed linearly to this value at the last step")

    # --- optimisation (air.train, air.schedules) -----------------------------------------------------------------
    n_epochs: int = option(8, "passes over the training scenes")
    batch_size: int = option(32, "scenes per gradient step")
    lr: float = option(2e-3, "Adam learning rate")
    lr_schedule: str = option("constant", "constant (the seed), or a cosine decay to lr * lr_final over the run",
                              choices=("constant", "cosine"))
    lr_final: float = option(0.05, "with the cosine schedule, the last step's learning rate as a fraction of lr")
    adam_betas: tuple = option((0.9, 0.999), "Adam's decay rates for the first and second moments")
    adam_eps: float = option(1e-8, "Adam's denominator offset")
    param_average: float = option(0.0, "decay of a running average of the parameters (Polyak averaging), which "
                                       "validation, the best checkpoint and the test score use; 0: none")
    seed: int = option(0, "seeds the training scenes, the initial parameters and the training noise")
    dtype: str = option("float32", "float32 for training speed, float64 for gradient checks",
                        choices=("float32", "float64"))

    def __post_init__(self):
        validate(self)

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, values):
        """Build a Config from a dict such as `json.loads(config.to_json())` (lists become tuples)."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(unknown[0], "not a Config field")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# The Config's sections in field order, by their first field: the command line's --help groups its flags so.
SECTIONS = (("scenes", "canvas_size"), ("guide and generative model", "max_steps"), ("objective", "recon_weight"),
            ("optimisation", "n_epochs"))


def sections():
    """[(title, [field names])] in field order, as SECTIONS divides the Config."""
    starts = {first: title for title, first in SECTIONS}
    out = []
    for f in dataclasses.fields(Config):
        if f.name in starts:
            out.append((starts[f.name], []))
        out[-1][1].append(f.name)
    return out


# The string fields and their allowed values, from their metadata (the command line offers them as choices).
CHOICES = {f.name: f.metadata["choices"] for f in dataclasses.fields(Config) if "choices" in f.metadata}


def _require(condition, name, problem):
    if not condition:
        raise ConfigError(name, problem)


def validate(c):
    """Raise ConfigError naming the first field whose value is impossible."""
    _check_types(c)
    _check_signs_and_choices(c)
    _check_scenes_and_networks(c)
    _check_priors(c)
    _check_rates_and_ranges(c)


def _check_types(c):
    """Integers, finite numbers and tuples where the fields declare them (a bool is not a number here)."""
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        if f.type is int:
            _require(isinstance(value, int) and not isinstance(value, bool), f.name,
                     f"must be an integer, got {value!r}")
        elif f.type is float:
            _require(isinstance(value, (int, float)) and not isinstance(value, bool), f.name,
                     f"must be a number, got {value!r}")
            _require(value == value and abs(value) != float("inf"), f.name, f"must be finite, got {value!r}")
        elif f.type is tuple:
            _require(isinstance(value, tuple), f.name, f"must be a tuple, got {value!r}")


def _check_signs_and_choices(c):
    """Sizes, counts, rates and widths positive; weights, seeds and counts that may be zero not negative; every
    string field one of its CHOICES."""
    positive = ["canvas_size", "n_train", "n_val", "n_test", "max_steps", "what_dim", "window_size", "rnn_hidden",
                "likelihood_sd", "prior_anneal", "glimpse_hidden", "baseline_hidden", "baseline_lr",
                "decoder_hidden", "n_epochs", "batch_size", "lr", "temp_start", "temp_end", "adam_eps"]
    for name in positive:
        _require(getattr(c, name) > 0, name, f"must be positive, got {getattr(c, name)}")
    for name in ["max_digits", "kl_warmup_epochs", "recon_weight", "kl_what_weight", "kl_pres_weight",
                 "eval_seed", "seed"]:
        _require(getattr(c, name) >= 0, name, f"must be zero or more, got {getattr(c, name)}")
    for name, choices in CHOICES.items():
        _require(getattr(c, name) in choices, name, f"must be one of {', '.join(choices)}; got {getattr(c, name)!r}")


def _check_scenes_and_networks(c):
    """Counts and digits that fit the canvas, a window that fits it too (and the conv decoder's grid), and
    network widths that make a network."""
    _require(all(isinstance(n, int) and 0 <= n <= c.max_digits for n in c.train_counts), "train_counts",
             f"must be counts between 0 and max_digits ({c.max_digits}), got {c.train_counts}")
    _require(len(c.digit_size) == 2 and 0 < c.digit_size[0] <= c.digit_size[1], "digit_size",
             f"must be two sizes 0 < smallest <= largest, got {c.digit_size}")
    low, high = scaled_digit_size(c)
    _require(c.scene_family == "pyro" or high <= c.canvas_size, "digit_size",
             f"digits up to {high} px do not fit a {c.canvas_size}-px canvas")
    _require(c.scene_family == "own" or c.canvas_size >= PYRO_MIN_CANVAS, "canvas_size",
             f"Pyro's scenes (scene_family='pyro') hold digits of up to 28 px with room to move: the canvas must be "
             f"at least {PYRO_MIN_CANVAS} px, got {c.canvas_size}")
    _require(c.window_size <= c.canvas_size, "canvas_size",
             f"the canvas ({c.canvas_size} px) is smaller than the window ({c.window_size} px)")
    _require(c.window_size >= 2, "window_size", f"must be at least 2, got {c.window_size}")
    _require(c.decoder != "conv" or c.window_size % 4 == 0, "window_size",
             f"the conv decoder upsamples a P/4 grid twice, so P must be a multiple of 4; got {c.window_size}")
    _require(len(c.decoder_channels) == 2 and all(isinstance(h, int) and h > 0 for h in c.decoder_channels),
             "decoder_channels", f"must be two positive channel counts, got {c.decoder_channels}")
    _require(c.step_memory == "lstm" or c.inference == "residual", "step_memory",
             f"'none' needs inference='residual': without memory every {c.inference} step would read the same "
             "input and repeat the first step's answer")
    _require(len(c.encoder_hidden) >= 1 and all(isinstance(h, int) and h > 0 for h in c.encoder_hidden),
             "encoder_hidden", f"must be one or more positive widths, got {c.encoder_hidden}")


def _check_priors(c):
    """A presence probability per step, z_where's prior in three coordinates, a presence floor only where an
    estimator uses it, and the count prior's hold a fraction of training."""
    _require(len(c.pres_prior) == c.max_steps, "pres_prior",
             f"needs one probability per step ({c.max_steps}), got {len(c.pres_prior)}")
    _require(all(0 < p < 1 for p in c.pres_prior), "pres_prior",
             f"probabilities must lie strictly between 0 and 1, got {c.pres_prior}")
    _require(len(c.where_prior_mean) == 3, "where_prior_mean", f"needs (log s, tx, ty), got {c.where_prior_mean}")
    _require(len(c.where_prior_sd) == 3 and all(v > 0 for v in c.where_prior_sd), "where_prior_sd",
             f"needs three positive standard deviations, got {c.where_prior_sd}")
    _require(0 <= c.pres_floor < 0.5, "pres_floor", f"must lie in [0, 0.5), got {c.pres_floor}")
    _require(c.pres_floor == 0 or c.pres_estimator != "relaxed", "pres_floor",
             "applies to the enumerate and reinforce estimators; the relaxed one has no floor")
    _require(0 <= c.prior_hold < 1, "prior_hold", f"must lie in [0, 1), got {c.prior_hold}")


def _check_rates_and_ranges(c):
    """Fractions, decays and probabilities inside their intervals, (low, high) ranges in order, and a batch no
    larger than the training set."""
    _require(0 < c.lr_final <= 1, "lr_final", f"must lie in (0, 1], got {c.lr_final}")
    _require(0 <= c.signal_decay < 1, "signal_decay", f"must lie in [0, 1), got {c.signal_decay}")
    _require(0 <= c.param_average < 1, "param_average", f"must lie in [0, 1), got {c.param_average}")
    for name in ("prior_start", "prior_end"):
        _require(0 < getattr(c, name) < 1, name, f"must lie strictly between 0 and 1, got {getattr(c, name)}")
    for name in ("log_scale_range", "what_logvar_range"):
        r = getattr(c, name)
        _require(len(r) == 2 and r[0] < r[1], name, f"must be (low, high) with low < high, got {r}")
    _require(len(c.adam_betas) == 2 and all(0 <= b < 1 for b in c.adam_betas), "adam_betas",
             f"must be two rates in [0, 1), got {c.adam_betas}")
    _require(c.batch_size <= c.n_train, "batch_size",
             f"{c.batch_size} is larger than the training set (n_train = {c.n_train})")


PYRO_MIN_CANVAS = 29  # Pyro's frames, int(28 / scale) px, reach 28 once scale <= 1 (a 3-sd draw)


def scaled_digit_size(c):
    """Digit side range in pixels on this canvas: `digit_size` is given for 32 px and scales linearly."""
    factor = c.canvas_size / 32
    return max(1, round(c.digit_size[0] * factor)), max(1, round(c.digit_size[1] * factor))


_PAPER_OBJECTIVE = dict(pres_estimator="enumerate", count_prior="geometric", likelihood="gaussian",
                        kl_what_weight=1.0, kl_pres_weight=1.0, kl_warmup_epochs=0, scenes="streaming")

PRESETS = {
    # The seed's model and training exactly (shared/seed/air_multimnist.md): 1,500 fixed scenes,
    # 8 epochs of batch 32, Adam 2e-3, relaxed z_pres annealed 1.0 -> 0.2.
    "seed": Config(),
    # The paper's setup (Eslami et al. 2016, Sec. 3.1): 50x50 scenes of 0-2 digits, recurrent inference,
    # glimpse encoder, geometric count prior, Gaussian likelihood,
    # z_what 50, window 28, LSTM 256, stochastic z_where, fresh scenes from the full digit pool, whose digits
    # do not pile ink on each other (Pyro's scenes, on which the published 98% figures were measured).
    # Tuned to the CPU budget (README, "The paper's AIR"): lr 1e-3 with a cosine decay over 15,000 steps of
    # batch 64; the count prior starts at rho = 0.5 and is annealed to 1e-5 over the first 11% of training;
    # presence probabilities floored at 0.05 so no step is switched off for good. Windows of 12-20 px, which frame
    # a digit's ink rather than its 28-px frame, so that one window cannot hold two close digits, and a sharper
    # likelihood (sd 0.2), which makes two windows worth more than one blob (docs/results.md, "Why close digits
    # merge"). The paper's estimator, REINFORCE with an NVIL baseline, is --pres-estimator reinforce; the preset
    # sums the T + 1 counts out exactly instead, which on seeds 0-4 counts a little better (0.978 against 0.975 on
    # 10,000 test scenes; worst seed 0.975 against 0.968) and has no all-empty first phase.
    "paper": Config(canvas_size=50, window_size=28, what_dim=50, rnn_hidden=256, inference="recurrent",
                    object_encoder="glimpse", decoder_hidden=200, glimpse_hidden=200, lr=1e-3, batch_size=64,
                    n_train=6400, n_epochs=150, lr_schedule="cosine", overlap="rejected",
                    log_scale_range=(-1.4, -0.9), where_log_scale_init=-1.1, z_where="stochastic",
                    where_prior_mean=(-1.1, 0.0, 0.0), prior_start=0.5, prior_anneal=0.11, pres_floor=0.05,
                    likelihood_sd=0.2, **_PAPER_OBJECTIVE),
    # The best counter found so far on the seed's 32x32 scenes within a CPU budget of minutes (README),
    # scored on a running average of its parameters (decay 0.995, about 200 steps).
    "best": Config(inference="residual", rnn_hidden=128, object_encoder="glimpse", pres_estimator="enumerate",
                   count_prior="geometric", likelihood="gaussian", kl_what_weight=1.0, kl_pres_weight=1.0,
                   scenes="streaming", n_epochs=40, param_average=0.995),
}


def preset(name):
    """The named Config. Raises ConfigError (field 'preset') for an unknown name."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
