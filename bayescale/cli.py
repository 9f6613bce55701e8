"""The ``bayescale`` command line: fit, predict from a saved fit, compare recipes, allocate compute, list laws.

Examples
--------
    bayescale fit runs.csv --law chinchilla --target N=70e9,D=1.4e12 --plot fit.png --save fit.nc
    bayescale predict fit.nc --at N=7e10,D=1.4e12
    bayescale fit recipes.csv --law saturating_power --x C --group recipe --save recipes.nc
    bayescale compare recipes.nc --candidate tuned --baseline kaplan --at C=1e21 --at C=1e23
    bayescale optimal fit.nc --C 1e22,5.88e23
    bayescale laws
"""

from __future__ import annotations

import argparse
import sys
import warnings

CACHE_MAX_BYTES = 256 * 2**20

FIT_EPILOG = """\
examples:
  bayescale fit data/simulated_runs.csv --law chinchilla --target N=70e9,D=1.4e12 --plot fit.png
  bayescale fit runs.csv --law saturating_power --x C --column C=flops --metric val_loss --target C=1e24
  bayescale fit families.csv --law chinchilla --group family --save families.nc

Prints the posterior summary (median and interval of every parameter, R-hat, ESS) and the median
and interval at the target; exits with status 2 and a one-line message when the input is unusable.
Beyond the data the interval of a new run includes the risk that the law itself is wrong there.

Compiled samplers are kept between runs in JAX's compilation cache, ~/.cache/bayescale/jax
(at most 256 MB; $JAX_COMPILATION_CACHE_DIR chooses another folder), so a second run of
the same law on data of a similar size starts sampling in a few seconds.
"""


def _laws_text() -> str:
    from bayescale import laws

    lines = []
    for name in laws.LAWS:
        law = laws.get(name)
        one = len(law.inputs) == 1
        where = "input x (choose it with --x, default C)" if one else f"inputs {', '.join(law.inputs)}"
        lines.append(f"  {name:<17} {law.formula:<55} {where}")
    return "\n".join(lines)


def _pairs(text: str, what: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"{what} must look like NAME=VALUE[,NAME=VALUE], got {text!r}")
        out[key.strip()] = value.strip()
    return out


def _numbers(what: str):
    def parse(text: str) -> dict[str, float]:
        out = {}
        for key, value in _pairs(text, what).items():
            try:
                out[key] = float(value)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{what} value for {key} must be a number, got {value!r}") from None
        return out

    return parse


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _level(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"--level must be in (0, 1), got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    from bayescale.config import VERSION

    top = argparse.ArgumentParser(prog="bayescale", description="Bayesian scaling laws: fit, extrapolate, compare.")
    top.add_argument("--version", action="version", version=f"bayescale {VERSION}")
    sub = top.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    fit = sub.add_parser(
        "fit",
        help="fit a law to a CSV of runs and extrapolate",
        description="Fit a scaling law to training runs with NUTS and extrapolate it to a target budget.\n\n"
        "The CSV needs one row per run, a column per law input and a column with the metric:\n"
        f"{_laws_text()}\n"
        "Columns are found by the input names; map other names with --column N=params,D=tokens.",
        epilog=FIT_EPILOG,
        formatter_class=raw,
    )
    fit.add_argument("csv", help="CSV file with one row per training run")
    fit.add_argument("--law", default="chinchilla", help="law to fit (see above; default chinchilla)")
    fit.add_argument("--x", default=None, help="input name of a one-input law, e.g. C, N, D, steps (default C)")
    fit.add_argument("--chance", type=float, default=None, help="the accuracy law: the task's chance level (required)")
    fit.add_argument("--falling", action="store_true", help="the accuracy law: accuracy rises as x falls (a loss)")
    fit.add_argument("--ceiling", type=float, default=None, help="the accuracy law: a known ceiling (default learned)")
    fit.add_argument("--breaks", type=int, default=None, help="broken_power: the number of bends (default 1)")
    fit.add_argument(
        "--pivots",
        type=_numbers("--pivots"),
        default=None,
        metavar="N0=VALUE,D0=VALUE",
        help="farseer: the model size and tokens its parameters are read at (default N0=1e9,D0=2e10)",
    )
    fit.add_argument("--metric", default="loss", help="column with the metric to model (default: loss; must be > 0)")
    fit.add_argument(
        "--column",
        type=lambda t: _pairs(t, "--column"),
        default={},
        metavar="INPUT=COLUMN,...",
        help="map law inputs to CSV columns, e.g. N=params,D=tokens",
    )
    fit.add_argument("--group", default=None, metavar="COLUMN", help="column of model families or recipes: pooled")
    fit.add_argument(
        "--within", default=None, metavar="COLUMN", help="column of the outer group each group sits in (two levels)"
    )
    fit.add_argument(
        "--target",
        type=_numbers("--target"),
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
    fit.add_argument(
        "--save", default=None, metavar="NC", help="save the fit as netCDF (for predict, compare, optimal)"
    )
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--chains", type=int, default=4)
    fit.add_argument("--warmup", type=int, default=1000)
    fit.add_argument("--draws", type=int, default=1000)
    fit.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )

    predict = sub.add_parser(
        "predict",
        help="predict from a saved fit",
        description="Median and interval of a new run, and of the law's curve, at new inputs of a saved fit.",
        epilog="example:\n  bayescale predict fit.nc --at N=7e10,D=1.4e12 --at N=1e11,D=2e12",
        formatter_class=raw,
    )
    predict.add_argument("fit", help="a fit saved with bayescale fit --save (or ScalingFit.save)")
    predict.add_argument(
        "--at", type=_numbers("--at"), action="append", required=True, metavar="INPUT=VALUE,...",
        help="law inputs of one row; repeat for more rows",
    )  # fmt: skip
    predict.add_argument("--group", default=None, help="the group (family, recipe) of a hierarchical fit")
    predict.add_argument("--within", default=None, help="the outer group of a new group (a fit with --within)")
    predict.add_argument("--level", type=_level, default=0.9)

    compare = sub.add_parser(
        "compare",
        help="compare two groups (recipes) of a saved fit",
        description="The difference between two groups of a saved hierarchical fit, and P(candidate is better).",
        epilog="example:\n  bayescale compare recipes.nc --candidate tuned --baseline kaplan --at C=1e21 --at C=1e23",
        formatter_class=raw,
    )
    compare.add_argument("fit", help="a hierarchical fit saved with bayescale fit --group ... --save")
    compare.add_argument("--candidate", required=True)
    compare.add_argument("--baseline", required=True)
    compare.add_argument(
        "--at", type=_numbers("--at"), action="append", required=True, metavar="INPUT=VALUE,...",
        help="scale of one row (the law's inputs, or C alone for a law of N and D); repeat for more",
    )  # fmt: skip
    compare.add_argument("--higher-is-better", action="store_true", help="for accuracies (default: lower is better)")
    compare.add_argument("--level", type=_level, default=0.9)

    optimal = sub.add_parser(
        "optimal",
        help="compute-optimal allocation from a saved fit of N and D",
        description="Posterior of the compute-optimal N, D, tokens per parameter and loss at budgets C = 6 N D.",
        epilog="example:\n  bayescale optimal fit.nc --C 1e22,5.88e23",
        formatter_class=raw,
    )
    optimal.add_argument("fit", help="a fit of a law of N and D saved with bayescale fit --save")
    optimal.add_argument("--C", type=_floats, required=True, metavar="FLOPS,...", help="compute budgets in FLOPs")
    optimal.add_argument("--group", default=None, help="the group of a hierarchical fit (a new label: a new group)")
    optimal.add_argument("--level", type=_level, default=0.9)

    sub.add_parser("laws", help="list the built-in laws", description="The built-in laws, their formulas and inputs.")
    return top


def use_compilation_cache() -> str:
    """Keep compiled programs between runs of the command; returns the folder.

    The command is a fresh process every time, and compiling the sampler is most of a small
    fit's wall time. JAX's persistent compilation cache stores the compiled programs on disk.
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
    law = bs.laws.get(args.law)
    law_args = {}
    if args.x is not None:
        if len(law.inputs) != 1:
            raise ValueError(f"--x applies to one-input laws; {args.law}'s inputs are {', '.join(law.inputs)}")
        law_args["x"] = args.x
    accuracy = {"chance": args.chance, "rising": not args.falling, "ceiling": args.ceiling}
    if args.law == bs.laws.AccuracyLaw.name:
        if args.chance is None:
            raise ValueError("the accuracy law needs the task's chance level, e.g. --chance 0.25 for four options")
        law_args.update(accuracy)
    elif args.chance is not None or args.falling or args.ceiling is not None:
        raise ValueError(f"--chance, --falling and --ceiling apply to the accuracy law, not {args.law}")
    if args.breaks is not None:
        if args.law != bs.laws.BrokenPowerLaw.name:
            raise ValueError(f"--breaks applies to the broken_power law, not {args.law}")
        law_args["breaks"] = args.breaks
    if args.pivots is not None:
        if args.law != bs.laws.Farseer.name:
            raise ValueError(f"--pivots applies to the farseer law, not {args.law}")
        unknown = set(args.pivots) - {"N0", "D0"}
        if unknown:
            raise ValueError(f"--pivots takes N0 and D0, got {sorted(unknown)}")
        law_args.update(args.pivots)
    if law_args:
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
        law,
        target=args.metric,
        inputs=inputs,
        noise=args.noise,
        likelihood=bs.likelihoods.get(args.likelihood),
        group=args.group,
        within=args.within,
    )
    if args.target is not None:
        bs.plot.target_dict(args.target, law.inputs)  # check before the slow part
    fit = model.fit(
        frame, seed=args.seed, chains=args.chains, warmup=args.warmup, draws=args.draws, progress_bar=args.progress
    )
    print(f"{model!r}\n{len(frame)} rows from {args.csv}; {fit.health}\n")
    table = fit.summary(args.level)[["median", "lower", "upper", "r_hat", "ess_bulk"]]
    print(f"posterior ({args.level:.0%} equal-tailed intervals):")
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    if args.target is not None:
        if model.group is not None:
            print("\n(--target on a hierarchical fit: use bayescale predict FIT --at ... --group ...)")
        else:
            _print_prediction(fit, [args.target], args.metric, args.level)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        ax = fit.plot(target=args.target) if model.group is None else bs.plot.groups(fit)
        ax.figure.savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"\nplot written to {args.plot}")
    if args.save:
        fit.save(args.save)
        print(f"fit saved to {args.save}")


def _print_prediction(fit, rows: list[dict], metric: str, level: float, group=None, within=None) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows)
    if group is not None:
        frame[fit.model.group] = group
    if within is not None:
        if fit.model.within is None:
            raise ValueError("--within places a new group in an outer group, and this fit has one grouping level")
        frame[fit.model.within] = within
    pred = fit.predict(frame)
    observed, mean = pred.interval(level), pred.interval(level, kind="mean")
    far = fit.extrapolation(frame)
    for i, row in enumerate(rows):
        where = ", ".join(f"{k}={v:g}" for k, v in row.items())
        beyond = f"; {far[i]:.2g} decades beyond the data" if far[i] > 0 else "; inside the data's range"
        print(f"\nprediction at {where}{beyond}:")
        for label, table in ((f"{metric} of a new run", observed), ("mean curve (the law)", mean)):
            r = table.iloc[i]
            print(f"  {label:<24} {r['median']:.4g}  [{r['lower']:.4g}, {r['upper']:.4g}]  ({level:.0%} interval)")


def run_predict(args) -> None:
    import bayescale as bs

    fit = bs.load_fit(args.fit)
    _print_prediction(fit, args.at, fit.model.target, args.level, args.group, args.within)


def run_compare(args) -> None:
    import bayescale as bs

    fit = bs.load_fit(args.fit)
    scales = {}
    for row in args.at:
        for key, value in row.items():
            scales.setdefault(key, []).append(value)
    if len({len(v) for v in scales.values()}) > 1:
        raise ValueError("every --at must name the same inputs")
    cmp = fit.compare(args.candidate, args.baseline, lower_is_better=not args.higher_is_better)
    table = cmp.table(args.level, **scales)
    print(f"{args.candidate} minus {args.baseline} ({args.level:.0%} intervals; {fit.model.target}):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def run_optimal(args) -> None:
    import bayescale as bs

    fit = bs.load_fit(args.fit)
    table = fit.optimal(C=args.C, group=args.group).interval(args.level)
    print(f"compute-optimal allocation, C = 6 N D ({args.level:.0%} intervals):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def run_laws(args) -> None:
    print(_laws_text())


COMMANDS = {"fit": run_fit, "predict": run_predict, "compare": run_compare, "optimal": run_optimal, "laws": run_laws}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayescale`` command; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            COMMANDS[args.command](args)
        for w in caught:  # each once, after the output it concerns (Python would print some twice)
            if not issubclass(w.category, DeprecationWarning):
                print(f"bayescale: warning: {w.message}", file=sys.stderr)
    except (ValueError, TypeError, KeyError, FileNotFoundError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bayescale: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
