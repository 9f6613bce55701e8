"""The ``bayescale`` command line: fit a law to a CSV of runs and extrapolate to a target.

Examples
--------
    bayescale fit runs.csv --law chinchilla --target N=70e9,D=1.4e12 --plot fit.png
    bayescale fit sweep.csv --law saturating_power --x C --metric val_loss --column C=flops --target C=1e24
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Fit a scaling law to training runs with NUTS and extrapolate it to a target budget.

The CSV needs one row per run, a column per law input and a column with the metric:
  chinchilla        loss = E + A N^-alpha + B D^-beta   inputs N (parameters), D (tokens)
  saturating_power  loss = E + A x^-alpha               input x (choose it with --x, default C)
  power             loss = A x^-alpha                   input x (choose it with --x, default C)
Columns are found by the input names; map other names with --column N=params,D=tokens.
"""

EPILOG = """\
examples:
  bayescale fit data/simulated_runs.csv --law chinchilla --target N=70e9,D=1.4e12 --plot fit.png
  bayescale fit runs.csv --law saturating_power --x C --column C=flops --metric val_loss --target C=1e24

Prints the posterior summary (median and interval of every parameter, R-hat, ESS) and the
median and interval of a new run at the target; exits with status 2 and a one-line
message when the input is unusable.

Compiled samplers are kept between runs in JAX's compilation cache, ~/.cache/bayescale/jax
(at most 256 MB; $JAX_COMPILATION_CACHE_DIR chooses another folder), so a second run of
the same law on data of a similar size starts sampling in a few seconds.
"""

CACHE_MAX_BYTES = 256 * 2**20


def _pairs(text: str, what: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"{what} must look like NAME=VALUE[,NAME=VALUE], got {text!r}")
        out[key.strip()] = value.strip()
    return out


def _target(text: str) -> dict[str, float]:
    out = {}
    for key, value in _pairs(text, "--target").items():
        try:
            out[key] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--target value for {key} must be a number, got {value!r}") from None
    return out


def _level(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"--level must be in (0, 1), got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="bayescale", description="Bayesian scaling laws.")
    sub = top.add_subparsers(dest="command", required=True)
    fit = sub.add_parser(
        "fit",
        help="fit a law to a CSV of runs and extrapolate",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("csv", help="CSV file with one row per training run")
    fit.add_argument("--law", default="chinchilla", help="law to fit: chinchilla (default), saturating_power, power")
    fit.add_argument("--x", default=None, help="input name of a one-input law, e.g. C, N, D, steps (default C)")
    fit.add_argument("--metric", default="loss", help="column with the metric to model (default: loss; must be > 0)")
    fit.add_argument(
        "--column",
        type=lambda t: _pairs(t, "--column"),
        default={},
        metavar="INPUT=COLUMN,...",
        help="map law inputs to CSV columns, e.g. N=params,D=tokens",
    )
    fit.add_argument(
        "--target",
        type=_target,
        default=None,
        metavar="INPUT=VALUE,...",
        help="budget to extrapolate to, e.g. N=70e9,D=1.4e12 or C=1e24",
    )
    fit.add_argument("--level", type=_level, default=0.9, help="credible level of the intervals (default 0.9)")
    fit.add_argument(
        "--likelihood",
        choices=["student_t", "normal"],
        default="student_t",
        help="noise model on log(metric) (default student_t, robust to bad runs)",
    )
    fit.add_argument("--noise", default=None, metavar="COLUMN", help="column with each run's known standard deviation")
    fit.add_argument("--plot", default=None, metavar="PNG", help="write a plot of data, fit and target")
    fit.add_argument("--save", default=None, metavar="NC", help="save the fit as netCDF (load with bayescale.load_fit)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--chains", type=int, default=4)
    fit.add_argument("--warmup", type=int, default=1000)
    fit.add_argument("--draws", type=int, default=1000)
    fit.add_argument("--progress", action="store_true", help="show a progress bar")
    return top


def use_compilation_cache() -> str:
    """Keep compiled programs between runs of the command; returns the folder.

    The command is a fresh process every time, and compiling the sampler is most of a
    small fit's wall time (Chinchilla law on the bundled data: ~10 of ~12 s cold on a
    2-core CPU). JAX's persistent compilation cache stores the compiled programs on disk.
    A folder the user already chose (``$JAX_COMPILATION_CACHE_DIR``) is kept; the library
    itself never sets this process-wide option, only the command does.
    """
    import jax

    from bayescale.datasets import user_cache_dir

    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", str(user_cache_dir() / "jax"))
        if jax.config.jax_compilation_cache_max_size == -1:
            jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    return jax.config.jax_compilation_cache_dir


def run_fit(args) -> None:
    import pandas as pd

    import bayescale as bs

    use_compilation_cache()

    law_args = {"x": args.x} if args.x is not None else {}
    if args.x is not None and args.law == "chinchilla":
        raise ValueError("--x applies to one-input laws (saturating_power, power); chinchilla's inputs are N and D")
    law = bs.laws.get(args.law, **law_args)
    unknown = set(args.column) - set(law.inputs)
    if unknown:
        raise ValueError(f"--column names {sorted(unknown)}, which are not inputs of {args.law} {list(law.inputs)}")
    inputs = {x: args.column.get(x, x) for x in law.inputs}
    try:
        frame = pd.read_csv(args.csv)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {args.csv}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {args.csv} as CSV: {str(err).strip().splitlines()[0]}") from None
    model = bs.ScalingModel(
        law, target=args.metric, inputs=inputs, noise=args.noise, likelihood=bs.likelihoods.get(args.likelihood)
    )
    if args.target is not None:
        bs.plot._target_dict(args.target, law.inputs)  # check before the slow part
    fit = model.fit(
        frame, seed=args.seed, chains=args.chains, warmup=args.warmup, draws=args.draws, progress_bar=args.progress
    )
    print(f"{model!r}\n{len(frame)} rows from {args.csv}; {fit.health}\n")
    table = fit.summary(args.level)[["median", "lower", "upper", "r_hat", "ess_bulk"]]
    print(f"posterior ({args.level:.0%} equal-tailed intervals):")
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    if args.target is not None:
        pred = fit.predict(**{k: [v] for k, v in args.target.items()})
        obs = pred.interval(args.level).iloc[0]
        mean = pred.interval(args.level, kind="mean").iloc[0]
        where = ", ".join(f"{k}={v:g}" for k, v in args.target.items())
        print(f"\nprediction at {where}:")
        for label, row in ((f"{args.metric} of a new run", obs), ("mean curve (the law)", mean)):
            print(
                f"  {label:<24} {row['median']:.4g}  [{row['lower']:.4g}, {row['upper']:.4g}]  "
                f"({args.level:.0%} interval)"
            )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        ax = fit.plot(target=args.target)
        ax.figure.savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"\nplot written to {args.plot}")
    if args.save:
        fit.save(args.save)
        print(f"fit saved to {args.save}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayescale`` command; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        if args.command == "fit":
            run_fit(args)
    except (ValueError, TypeError, KeyError, FileNotFoundError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bayescale: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
