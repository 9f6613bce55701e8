"""bayescale: Bayesian scaling laws with NumPyro NUTS, extrapolated with honest intervals.

Examples
--------
>>> import bayescale as bs
>>> df = bs.datasets.load("chinchilla")                                   # doctest: +SKIP
>>> model = bs.ScalingModel(bs.laws.Chinchilla(), target="loss", inputs={"N": "N", "D": "D"})
>>> fit = model.fit(df[~df.besiroglu_excluded], seed=0)                   # doctest: +SKIP
>>> fit.predict(N=7e10, D=1.4e12).interval(0.9)                           # doctest: +SKIP
"""

from bayescale import _config  # noqa: F401  (float64 and host devices before anything touches JAX)

__version__ = "0.1.0"

from bayescale import calibration, datasets, laws, likelihoods, plot, priors  # noqa: E402
from bayescale.compare import compare  # noqa: E402
from bayescale.data import DataError  # noqa: E402
from bayescale.diagnostics import SamplerWarning  # noqa: E402
from bayescale.fit import ScalingFit, load_fit  # noqa: E402
from bayescale.fits_file import load_fits  # noqa: E402
from bayescale.laws import Law, Parameter  # noqa: E402
from bayescale.many import ScalingFits  # noqa: E402
from bayescale.predict import Prediction  # noqa: E402
from bayescale.scaling_model import ScalingModel  # noqa: E402
from bayescale.selection import LawComparison, compare_laws  # noqa: E402

__all__ = [
    "DataError",
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
    "laws",
    "likelihoods",
    "load_fit",
    "load_fits",
    "plot",
    "priors",
]
