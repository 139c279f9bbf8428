"""What every command-line script shares: flags generated from Config, one-line errors, data loading."""
import argparse
import dataclasses
import difflib
import os
import re
import shutil
import sys

from air.checkpoint import CheckpointError, load_checkpoint
from air.config import CHOICES, PRESETS, Config, ConfigError, preset, sections
from air.data import DataError, load_mnist
from air.runs import BackendError
from air.shipped import PretrainedError, pretrained
from air.train import build_datasets


class UsageError(Exception):
    """Bad command-line input; the scripts print it as one line and exit with status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the flag and the problem (status 2), no usage dump, and a
    flag must be spelt out: argparse's prefix matching took --n-epoch 2 for --n-epochs 2 without a word."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message):
        raise UsageError(message + self._suggestion(message))

    def _suggestion(self, message):
        """'; did you mean --n-epochs?' for an unrecognised flag close to a known one (else '')."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        known = [flag for action in self._actions for flag in action.option_strings if flag.startswith("--")]
        for word in message.split(":", 1)[1].split():
            flag = word.split("=", 1)[0]
            if flag.startswith("--"):
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
                if not close:  # a flag that is part of a known one, as --epochs of --n-epochs
                    close = [k for k in known if k.endswith("-" + flag[2:])][:1]
                if close:
                    return f"; did you mean {close[0]}?"
        return ""

    def format_usage(self):
        self._compact_usage()
        return super().format_usage()

    def format_help(self):
        self._compact_usage()
        return super().format_help()

    def _compact_usage(self):
        """With Config flags, the usage line lists the script's own flags and stands for the rest (over a hundred
        lines otherwise); --help lists them below, grouped by the Config's sections."""
        if self.usage is not None or not any(getattr(a, "config_field", False) for a in self._actions):
            return
        formatter = self._get_formatter()
        formatter.add_usage(None, [a for a in self._actions if not getattr(a, "config_field", False)], [])
        text = formatter.format_help().strip().removeprefix("usage: ")
        self.usage = text.replace("%", "%%") + " [--CONFIG-FIELD VALUE ...]"

    def parse_known_args(self, args=None, namespace=None):
        # argparse reads a value such as "-1.5,-0.3" (a tuple field with a negative first number) as an
        # unknown option; glue such values to their flag ("--log-scale-range=-1.5,-0.3") first.
        args = list(sys.argv[1:] if args is None else args)
        glued, i = [], 0
        while i < len(args):
            if (args[i].startswith("--") and "=" not in args[i] and i + 1 < len(args)
                    and re.fullmatch(r"-[0-9.eE+-]*,[0-9.eE+,-]*", args[i + 1])):
                glued.append(f"{args[i]}={args[i + 1]}")
                i += 2
            else:
                glued.append(args[i])
                i += 1
        return super().parse_known_args(glued, namespace)


def run(main, argv=None):
    """Call main(argv), turning expected failures into one line on stderr and an exit status."""
    try:
        return main(argv)
    except (UsageError, ConfigError, DataError, CheckpointError, BackendError) as e:
        print(f"{main.__module__.replace('__main__', 'air')}: error: {_message(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        return 141


def _message(error):
    """The error as one line: a Config field or a backend as its flag, a data file with the AIR_MNIST_DIR it was found
    by."""
    text = str(error)
    if isinstance(error, ConfigError):
        text = f"--{error.name.replace('_', '-')}: {error.problem}"
    elif isinstance(error, BackendError):
        text = f"--backend {error.backend}: {error.problem}"
    elif isinstance(error, DataError) and os.environ.get("AIR_MNIST_DIR"):
        text = f"AIR_MNIST_DIR: {error}"
    return " ".join(text.split())


def _parse_value(field):
    """A parser for one Config field's flag that says what it expected."""
    kind = field.type
    default = field.default
    item = field.metadata.get("item") or (type(default[0]) if kind is tuple and default else float)  # tuples' items

    def parse(text):
        try:
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
            if kind is tuple:
                items = [text_item for text_item in text.split(",") if text_item.strip()]
                return tuple(item(text_item) for text_item in items)
            return text
        except ValueError:
            what = {int: "an integer", float: "a number"}.get(kind) or f"comma-separated {item.__name__}s"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None

    parse.__name__ = kind.__name__
    return parse


def plural(n, noun):
    """'1 step', '2 steps', '1,500 steps'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def preset_help(what, default):
    """--preset's help: what it picks, then every known preset, so --help shows them."""
    return f"{what}: one of {', '.join(sorted(PRESETS))} (default: {default})"


def add_run_flags(parser, default_out):
    """The flags every training script shares besides the Config fields: preset, run folder, output. Returns their
    group, for the script's own flags."""
    group = parser.add_argument_group("the run: preset, folder and output")
    group.add_argument("--preset", default="seed", help=preset_help("named configuration to start from", "seed"))
    group.add_argument("--out", default=None, help=f"run folder (default: {default_out})")
    group.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    group.add_argument("--quiet", action="store_true",
                       help="no progress bar and no per-epoch lines; the final summary is still printed")
    group.add_argument("--no-figures", action="store_true", help="skip the six figures at the end of the run")
    return group


def add_config_flags(parser):
    """One flag per Config field, named after it (kl_what_weight -> --kl-what-weight), default from --preset,
    grouped by the Config's sections (scenes, guide and generative model, objective, optimisation)."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    for title, names in sections():
        group = parser.add_argument_group(f"{title} (Config fields; defaults from --preset)")
        for name in names:
            _add_config_flag(group, fields[name])


def _add_config_flag(group, field):
    flag = "--" + field.name.replace("_", "-")
    comment = field.metadata["help"]
    if field.name in CHOICES:
        comment += f" [{' | '.join(CHOICES[field.name])}]"
    kwargs = {"choices": CHOICES[field.name]} if field.name in CHOICES else {}
    action = group.add_argument(flag, dest=field.name, type=_parse_value(field), default=argparse.SUPPRESS,
                                metavar=field.name.upper(), help=f"{comment} (seed preset: {flag_text(field.default)})",
                                **kwargs)
    action.config_field = True  # so the usage line can stand for these and keep a script's own flags of one name


def config_from_args(args):
    """The preset named by args.preset with every flag the user gave applied on top."""
    base = preset(args.preset)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    return dataclasses.replace(base, **given), given


def int_list(text, flag, least=0):
    """The integers of a comma-separated flag value such as '0,1,2'; UsageError (one line) on anything else, on
    none, or on a value below `least`."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < least:
        raise UsageError(f"{flag}: expected integers >= {least}, got {text!r}")
    return values


def flag_text(value):
    """A Config value as its flag takes it: tuples comma-separated."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def load_data(config, quiet=False):
    """MNIST (printing one line naming the source) and the run's train / validation / test scenes."""
    mnist = load_mnist()
    if not quiet:
        print(f"data: {mnist.source}", flush=True)
    return build_datasets(config, mnist)


def load_model(args):
    """(params, config) of args.run or of the shipped model args.pretrained (exactly one of them given)."""
    if (args.run is None) == (args.pretrained is None):
        raise UsageError("give a RUN folder or --pretrained NAME (one of them)")
    try:
        return pretrained(args.pretrained) if args.pretrained else load_checkpoint(args.run)
    except PretrainedError as e:
        raise UsageError(f"--pretrained: {e}") from None
    except CheckpointError as e:
        raise UsageError(f"RUN: {e}") from None


def add_family_flags(parser):
    """The flags that choose another family of held-out scenes to score a run on (see scene_family)."""
    family = parser.add_argument_group("another scene family (defaults: the run's own)")
    family.add_argument("--digit-size", default=None, metavar="LOW,HIGH",
                        help="digit sides in px on a 32-px canvas, scaled with the canvas (Config.digit_size)")
    family.add_argument("--overlap", choices=["allowed", "rejected"], default=None,
                        help="digits may cross, or are kept from piling ink (Config.overlap)")
    family.add_argument("--scene-family", choices=["own", "pyro"], default=None,
                        help="the project's scenes, or drawn exactly as Pyro's multi_mnist.py draws them, the "
                             "peers' benchmark (Config.scene_family)")
    family.add_argument("--max-digits", type=int, default=None, help="scenes hold 0..N digits (Config.max_digits)")
    family.add_argument("--n-test", type=int, default=None, help="how many scenes to score (Config.n_test)")


def add_search_flags(parser):
    """--search and how (air.search.Search; defaults chosen on validation scenes for the paper preset)."""
    from air.search import PROPOSALS, SCORES, Search
    d = Search()
    group = parser.add_argument_group("count by search (air.search; only for models whose objective is an ELBO)")
    group.add_argument("--search", action="store_true",
                       help="also count by the model's evidence after a search where the guide may be wrong")
    group.add_argument("--search-steps", type=int, default=d.steps, metavar="N",
                       help=f"Adam steps refining each proposal (default {d.steps})")
    group.add_argument("--search-lr", type=float, default=d.lr, help=f"their step size for z_where (default {d.lr})")
    group.add_argument("--search-what-lr", type=float, default=d.what_lr,
                       help=f"their step size for z_what (default {d.what_lr})")
    group.add_argument("--search-proposals", default=",".join(d.proposals), metavar="KINDS",
                       help=f"comma-separated kinds of starting explanation, of {', '.join(PROPOSALS)} "
                            f"(default {','.join(d.proposals)})")
    group.add_argument("--search-score", choices=SCORES, default=d.score,
                       help=f"each count's estimate of log p(x, n): the ELBO at the refined means, or importance-"
                            f"weighted (default {d.score})")
    group.add_argument("--search-k", type=int, default=d.k, help=f"draws of the iw score (default {d.k})")
    group.add_argument("--search-gate", type=float, default=d.gate, metavar="INK",
                       help=f"search scenes whose guide leaves more ink than this unexplained in one window "
                            f"(default {d.gate}; -1 searches every scene)")


def search_options(args):
    """The air.search.Search the --search flags describe, or None without --search; UsageError naming a bad flag."""
    if not args.search:
        return None
    from air.search import PROPOSALS, Search
    kinds = tuple(k.strip() for k in args.search_proposals.split(",") if k.strip())
    unknown = [k for k in kinds if k not in PROPOSALS]
    if unknown or not kinds:
        raise UsageError(f"--search-proposals: expected kinds of {', '.join(PROPOSALS)}, got {args.search_proposals!r}")
    try:
        return Search(steps=args.search_steps, lr=args.search_lr, what_lr=args.search_what_lr, proposals=kinds,
                      score=args.search_score, k=args.search_k, gate=args.search_gate)
    except ValueError as error:
        raise UsageError(f"--search-{str(error).split(':')[0].replace('_', '-')}: {str(error).split(': ', 1)[1]}") \
            from None


def scene_family(config, args):
    """The run's config with the scene fields the flags name replaced (the model's fields are never touched)."""
    changes = {}
    if args.digit_size is not None:
        try:
            changes["digit_size"] = tuple(int(v) for v in args.digit_size.split(","))
        except ValueError:
            raise UsageError(f"--digit-size: expected two integers LOW,HIGH, got {args.digit_size!r}") from None
    for name in ("overlap", "scene_family", "max_digits", "n_test"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    return dataclasses.replace(config, **changes)  # ConfigError names a bad value's flag


def unstarted_run(out):
    """Whether `out` holds a run stopped before its first epoch finished: its config.json and nothing else a run
    writes (no checkpoint, no metrics; a write cut short by a kill leaves only a hidden .part file). Such a folder
    holds nothing to lose, so a new run may take it."""
    if not out.is_dir():
        return False
    names = {p.name for p in out.iterdir() if not (p.name.startswith(".") and p.name.endswith(".part"))}
    return names == {"config.json"}


def check_run_folder(out, overwrite, resumable=False):
    """UsageError if `out` holds a run and --overwrite was not given: a new run never replaces one silently (a run
    that finished no epoch, see unstarted_run, has nothing to replace)."""
    if out.exists() and any(out.iterdir()) and not overwrite and not unstarted_run(out):
        hint = "pass --resume to continue it or --overwrite to replace it" if resumable else \
            "pass --overwrite to replace it"
        raise UsageError(f"--out: {out} already holds a run; {hint}")


def claim_run_folder(out, overwrite, resumable=False):
    """Empty `out` for a new run (check_run_folder first). Call it once nothing else can fail before training,
    so that an error (bad data, say) leaves the run that --overwrite would replace."""
    check_run_folder(out, overwrite, resumable)
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
