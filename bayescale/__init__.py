"""bayescale: Bayesian scaling laws with NumPyro NUTS, extrapolated with honest intervals.

Examples
--------
>>> import bayescale as bs
>>> df = bs.datasets.load("chinchilla")                                   # doctest: +SKIP
>>> model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", inputs={"N": "N", "D": "D"})
>>> fit = model.fit(df[~df.besiroglu_excluded], seed=0)                   # doctest: +SKIP
>>> fit.predict(N=7e10, D=1.4e12).interval(0.9)                           # doctest: +SKIP
"""

from bayescale import config  # first: float64 before anything touches JAX

__version__ = config.VERSION

from bayescale import datasets, laws, likelihoods, plot, priors  # noqa: E402
from bayescale.data import DataError, DataWarning  # noqa: E402
from bayescale.io import load_fit, load_fits  # noqa: E402
from bayescale.laws import Law, Parameter  # noqa: E402
from bayescale.model import discrepancy  # noqa: E402
from bayescale.results.chain import Chain  # noqa: E402
from bayescale.results.comparison import compare  # noqa: E402
from bayescale.results.design import DesignWarning  # noqa: E402
from bayescale.results.fit import ScalingFit  # noqa: E402
from bayescale.results.fits import ScalingFits  # noqa: E402
from bayescale.results.prediction import Prediction  # noqa: E402
from bayescale.sampler.diagnostics import SamplerWarning  # noqa: E402
from bayescale.spec import ScalingModel  # noqa: E402
from bayescale.studies import calibration, validation  # noqa: E402
from bayescale.studies.laws import LawComparison, compare_laws  # noqa: E402

__all__ = [
    "Chain",
    "DataError",
    "DataWarning",
    "DesignWarning",
    "Law",
    "LawComparison",
    "Parameter",
    "Prediction",
    "SamplerWarning",
    "ScalingFit",
    "ScalingFits",
    "ScalingModel",
    "__version__",
    "calibration",
    "compare",
    "compare_laws",
    "datasets",
    "discrepancy",
    "laws",
    "likelihoods",
    "load_fit",
    "load_fits",
    "plot",
    "priors",
    "validation",
]
