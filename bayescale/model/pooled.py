"""Pooled parameters sampled in a frame that every group's own data and the population shape.

A pooled parameter is best sampled centred (``t_g ~ Normal(mu, tau)``) in a group whose
data pin it down more tightly than the groups differ, and non-centred (``t_g = mu + tau *
u_g``) where the spread is the tighter of the two (Papaspiliopoulos, Roberts and Skold
2007). Which one holds depends on ``tau``, which the sampler moves: a fixed choice puts
NUTS in a funnel at one end of the spread's posterior or on long curved trajectories at
the other. And a family's parameters are measured jointly, not one by one: the data of a
Chinchilla family fix its loss level and slopes at the reference scale tightly and the
split between ``E`` and the terms loosely, so that centring a parameter on its own says
little about the directions the sampler must cross.

Here every group's pooled values ``x_g`` (the parameters' sampling scale: logs of the
positive ones) come from its own standard coordinates ``u_g`` through the Gaussian
approximation of its conditional posterior at the current population, recomputed at every
step: with ``y = f(x)`` the coordinates where the law is nearly linear (:func:`to_coordinates`:
level coordinates where the law declares :attr:`~bayescale.laws.Law.level_terms` and all of
them are pooled, the parameters themselves otherwise), the pilot's fit of the group (its
mode ``y_hat`` under the population that the groups' own fits place, and the gradient ``g``
and Hessian ``H`` of its negative log likelihood there, all constants), and the population
``x ~ Normal(M, diag(S^2))`` linearised at ``y_hat`` (``x ~ x_hat + J (y - y_hat)``,
``J = dx/dy``)::

    P = J' S^-2 J + H                                        (the conditional precision)
    m = P^-1 (J' S^-2 (J y_hat + M - x_hat) + H y_hat - g)   (and mean)
    y = m + L'^-1 u / Z_SCALE,  L L' = P,  x = f^-1(y)

The likelihood is expanded where the group sits given a population like the one the chain
visits rather than at the group's fit alone (there ``g = 0``): a group whose data leave the
split between ``E`` and the terms loose has its fit alone wherever its prior put it, far from
where the chains go, and the map curves there (``benchmarks/bench_hierarchy_health.py``: on
4 simulated Chinchilla families x 8 runs, all five parameters pooled, 50 divergences in 20
fits, at most 8 in one, against 222 and 43 expanded at the fit alone).

Where the law has level terms ``f`` is not linear, and one linearisation of the population at
``y_hat`` leaves the values off by ``f``'s curvature: at a small spread that is many spreads,
a funnel. With few groups (at most :data:`FEW_GROUPS`), all of them in the frame, the spreads'
posterior reaches down there, so the step above is taken twice, the second time with ``J`` and
``x_hat`` at the first step's ``m`` (:func:`jacobian`, a Gauss-Newton step towards the
conditional mode); ``m`` and ``L`` still depend on the population and the noise scale only. It
costs a second Cholesky factor per group at every leapfrog step; with more groups, or with some
outside the frame, it did not pay for itself (measurements in ``docs/hierarchy.md``).

Where the spread is small against what the group's data say, ``P ~ J' S^-2 J`` and the map
is the non-centred one; where it is large, ``P ~ H`` and ``u`` is the group's own
standardised estimate (centred). In between it is the partially non-centred
parameterisation of the same authors, in several dimensions and for every ``tau`` the
chain visits. The approximation shapes the coordinates only: the density is exact, the
population's ``Normal(M, S)`` at ``x`` times the map's Jacobian ``|det L|^-1`` (``f`` has
unit Jacobian), so the posterior is the same whatever the pilot says.

On 8 simulated Chinchilla families x 40 runs (all five parameters pooled, 4 x (1000 +
1000), ``init="pilot"``, seeds 0-3 over several runs) this took the fit from 27-39 leapfrog
steps per draw and a minimum bulk ESS of 965-1,180 (binary centring from the pilot) to ~15
steps and 2,200-3,000, with no divergences at the default target acceptance of 0.95 (0-1 per
fit at 0.9); pooled level coordinates with a fixed centring choice had reached ~15 steps too,
but with 1-16 divergences per fit at the smallest exponent spreads. A step costs more (the
log density and gradient ~45 us against ~14 us: the frame is ~80 small XLA kernels).

This module is the arithmetic (NumPy and JAX, no NumPyro sites): :mod:`bayescale.model.build`
samples ``u`` and adds the density, :mod:`bayescale.model.pilot` measures the groups
(:class:`PooledBasis`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

# Groups up to which the frame takes a second step: with few groups the spreads' posterior reaches
# down to zero, where one linearisation leaves the values many spreads off (module docstring)
FEW_GROUPS = 6


class PooledBasis(NamedTuple):
    """What the pilot measured of every group's pooled parameters (a :class:`~bayescale.model.args.ModelArgs` field).

    All arrays have a leading group axis; the last axes follow the pooled parameters' order
    (:func:`bayescale.model.pooled_names`), each parameter's slot holding its coordinate
    (:func:`to_coordinates`).
    """

    mode: jnp.ndarray  # (groups, K): y_hat, the group's own fit in coordinates
    values: jnp.ndarray  # (groups, K): x_hat = f^-1(y_hat), the same on the sampling scale
    jacobian: jnp.ndarray  # (groups, K, K): dx/dy at y_hat
    information: jnp.ndarray  # (groups, K, K): Hessian of the group's negative log likelihood in y (PSD)
    framed: jnp.ndarray  # (groups,): 1.0 where the group is sampled in the frame, 0.0 where as without it
    log_noise: jnp.ndarray  # (groups,): log sigma at the group's own fit, where ``information`` was measured
    gradient: jnp.ndarray  # (groups, K): gradient of the group's negative log likelihood in y at ``mode``
    value_information: (
        jnp.ndarray
    )  # (groups, K, K): the same Hessian in the values x, J'^-1 H J^-1 (:func:`outer_frame`)
    value_data: jnp.ndarray  # (groups, K): and what it says of them, J'^-1 (H y_hat - g) (:func:`outer_frame`)
    # the same two for every group, in the frame or not, for its scale (:func:`scale_frame`); a group whose own fit
    # failed measured at its pooled values with the other sites at the fitted groups' median
    level_information: jnp.ndarray  # (groups, K, K)
    level_data: jnp.ndarray  # (groups, K)
    # (groups,): 1.0 where a group outside the frame has its level sampled given the rest (:func:`level_frame`),
    # None where no group has
    levelled: jnp.ndarray | None = None
    level_rows: jnp.ndarray | None = None  # the rows of those groups (indices), which alone say of their level


def to_coordinates(x: jnp.ndarray, names: Sequence[str], terms: Sequence[str]) -> jnp.ndarray:
    """The coordinates ``y = f(x)`` of pooled values ``x`` (last axis in ``names``' order).

    With ``terms = (E, A_1, alpha_1, A_2, alpha_2, ...)`` (all in ``names``) the irreducible
    term's slot holds the level ``log(E + sum_k A_k)`` at the reference scales, a prefactor's
    its split ``log E - log A_k`` and an exponent's its slope ``log A_k + log alpha_k``; the
    other parameters are their own coordinate. Unit Jacobian.

    Examples
    --------
    >>> import numpy as np
    >>> y = to_coordinates(np.log([[1.0, 2.0, 0.5]]), ("E", "A", "alpha"), ("E", "A", "alpha"))
    >>> np.round(np.asarray(y), 4).tolist()  # log 3, log 1/2, log 1
    [[1.0986, -0.6931, 0.0]]
    """
    if not terms:
        return x
    i = {name: k for k, name in enumerate(names)}
    e, pairs = terms[0], list(zip(terms[1::2], terms[2::2], strict=True))
    columns = [x[..., k] for k in range(len(names))]  # built column by column: no scatter in the gradient
    columns[i[e]] = jax.scipy.special.logsumexp(jnp.stack([x[..., i[name]] for name in (e, *terms[1::2])]), axis=0)
    for a, alpha in pairs:
        columns[i[a]] = x[..., i[e]] - x[..., i[a]]
        columns[i[alpha]] = x[..., i[a]] + x[..., i[alpha]]
    return jnp.stack(columns, axis=-1)


def from_coordinates(y: jnp.ndarray, names: Sequence[str], terms: Sequence[str]) -> jnp.ndarray:
    """The inverse of :func:`to_coordinates`.

    Examples
    --------
    >>> import numpy as np
    >>> names = ("E", "A", "alpha", "B", "beta")
    >>> x = np.log([[1.8, 480.0, 0.34, 2000.0, 0.37]])
    >>> np.allclose(from_coordinates(to_coordinates(x, names, names), names, names), x)
    True
    """
    if not terms:
        return y
    i = {name: k for k, name in enumerate(names)}
    e, pairs = terms[0], list(zip(terms[1::2], terms[2::2], strict=True))
    splits = jnp.stack([y[..., i[a]] for a, _ in pairs])
    columns = [y[..., k] for k in range(len(names))]
    log_e = y[..., i[e]] - jax.nn.softplus(jax.scipy.special.logsumexp(-splits, axis=0))  # level - log(1 + sum e^-q)
    columns[i[e]] = log_e
    for a, alpha in pairs:
        columns[i[a]] = log_e - y[..., i[a]]
        columns[i[alpha]] = y[..., i[alpha]] - columns[i[a]]
    return jnp.stack(columns, axis=-1)


def jacobian(y: jnp.ndarray, names: Sequence[str], terms: Sequence[str]) -> jnp.ndarray:
    """``dx/dy`` of :func:`from_coordinates` at ``y`` ``(..., K)``, in closed form: ``(..., K, K)``.

    Examples
    --------
    >>> import numpy as np
    >>> names = ("E", "A", "alpha", "B", "beta")
    >>> y = np.array([[1.2, -0.4, 0.3, 0.8, -0.2]])
    >>> auto = jax.vmap(jax.jacfwd(lambda v: from_coordinates(v, names, names)))(y)
    >>> np.allclose(jacobian(y, names, names), auto)
    True
    """
    if not terms:  # every parameter is its own coordinate
        return jnp.broadcast_to(jnp.eye(len(names), dtype=y.dtype), (*y.shape, len(names)))
    i = {name: k for k, name in enumerate(names)}
    e, pairs = terms[0], list(zip(terms[1::2], terms[2::2], strict=True))
    splits = jnp.stack([y[..., i[a]] for a, _ in pairs], axis=-1)
    c = jax.scipy.special.logsumexp(-splits, axis=-1)
    weights = jax.nn.sigmoid(c)[..., None] * jax.nn.softmax(-splits, axis=-1)  # d log E / d split_k
    n = len(names)
    rows = [[jnp.zeros(y.shape[:-1], y.dtype)] * n for _ in range(n)]
    one = jnp.ones(y.shape[:-1], y.dtype)
    for k in range(n):
        rows[k][k] = one  # parameters outside the level terms are their own coordinate
    rows[i[e]][i[e]] = one
    for k, (a, _) in enumerate(pairs):
        rows[i[e]][i[a]] = weights[..., k]
    for k, (a, alpha) in enumerate(pairs):
        rows[i[a]] = list(rows[i[e]])
        rows[i[a]][i[a]] = weights[..., k] - 1.0
        rows[i[alpha]] = [-v for v in rows[i[a]]]
        rows[i[alpha]][i[alpha]] = one
    return jnp.stack([jnp.stack(row, axis=-1) for row in rows], axis=-2)


def frame(
    location: jnp.ndarray, spread: jnp.ndarray, basis: PooledBasis, log_noise=None, coordinates=None, few=None
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per group, the conditional mean ``m`` and the Cholesky factor ``L`` of the precision (module docstring).

    ``location`` and ``spread`` are the population's ``M`` and ``S`` on the sampling scale,
    shape ``(K,)`` (``location`` ``(groups, K)`` for groups nested in outer groups: each
    group's outer location); ``log_noise`` the current ``log sigma`` (per group, or one
    value), at which the likelihood's information is ``exp(2 (basis.log_noise - log_noise))``
    times the pilot's (``None``: the pilot's). ``coordinates``: the pooled ``(names, terms)`` of
    :func:`to_coordinates`; where there are level terms and few groups (``few``; by default at
    most :data:`FEW_GROUPS`), all in the frame, a second Gauss-Newton step linearises the
    population at the first step's mean instead of at the pilot's mode (module docstring).
    Returns ``m`` ``(groups, K)`` and ``L`` ``(groups, K, K)``, lower triangular.
    """
    weight = 1.0 / spread**2
    information, gradient = weighed(basis, log_noise, basis.information, basis.gradient)
    data = jnp.einsum("gij,gj->gi", information, basis.mode) - gradient

    def solve(j, y0, x0):
        precision = jnp.einsum("gki,k,gkj->gij", j, weight, j) + information
        linearised = jnp.einsum("gkj,gj->gk", j, y0) + location - x0
        lower = cholesky(precision)
        rhs = jnp.einsum("gki,k,gk->gi", j, weight, linearised) + data
        return solve_upper(lower, solve_lower(lower, rhs)), lower

    mean, lower = solve(basis.jacobian, basis.mode, basis.values)
    few = basis.mode.shape[0] <= FEW_GROUPS if few is None else few
    if coordinates is not None and coordinates[1] and few:  # once more, at that mean
        names, terms = coordinates
        again = solve(jacobian(mean, names, terms), mean, from_coordinates(mean, names, terms))
        every = jnp.all(basis.framed > 0)  # where a group is outside the frame, one step (module docstring)
        mean, lower = jnp.where(every, again[0], mean), jnp.where(every, again[1], lower)
    return mean, lower


def outer_frame(
    location: jnp.ndarray, within: jnp.ndarray, between: jnp.ndarray, basis: PooledBasis, outer, n_outer, log_noise=None
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per outer group, the mean ``m_f`` ``(outer, K)`` and the Cholesky factor ``L_f`` ``(outer, K, K)`` of the
    precision of its location given the population and its groups' data.

    For groups nested in outer groups: the outer location ``l_f ~ Normal(M, diag(O^2))``, each
    group's values ``x_g ~ Normal(l_f, diag(S^2))`` and its data's measure of them
    (``basis``: the likelihood's Hessian in the values ``A_g`` and ``b_g = A_g x_hat_g - grad``,
    at the pilot's fit). With ``x_g`` integrated out, group ``g`` tells ``l_f`` what its data say
    of ``x_g`` with the spread within added: information ``W_g = (S^2 + A_g^-1)^-1``, computed as
    ``S^-1 Q (I + Q)^-1 S^-1`` with ``Q = S A_g S`` (no inverse of ``A_g``, which is singular in
    directions the data do not measure), and data ``(I + A_g S^2)^-1 b_g``. So
    ``P_f = diag(O^-2) + sum_g W_g`` and ``m_f = P_f^-1 (M / O^2 + sum_g (I + A_g S^2)^-1 b_g)``
    over the groups of outer group ``f`` (``outer``: each group's). Where the groups' data pin
    their values this is the outer group's own estimate; where the spread within is the larger,
    the population's. It depends on the population and the noise scale only (never on the
    groups' current values, which are sampled given ``l_f``), so ``l_f = m_f + L_f'^-1 e_f``
    with ``e_f`` standard is a map with Jacobian ``|det L_f|^-1``. ``location``, ``within``,
    ``between``: ``M``, ``S``, ``O``, each ``(K,)``; ``log_noise`` as in :func:`frame`.
    """
    weight, told = location_data(within, basis, log_noise)
    precision = jnp.diag(1.0 / between**2) + jax.ops.segment_sum(weight, outer, n_outer)
    lower = cholesky(precision)
    mean = solve_upper(lower, solve_lower(lower, location / between**2 + jax.ops.segment_sum(told, outer, n_outer)))
    return mean, lower


def location_data(
    within: jnp.ndarray, basis: PooledBasis, log_noise=None, every: bool = False
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """What every group's data say of the location its values scatter about: ``(W_g, t_g)``, ``(groups, K, K)``
    and ``(groups, K)``.

    With the group's values ``x_g ~ Normal(l, diag(S^2))`` integrated out (``within``: ``S``),
    the data's log likelihood of the location ``l`` is ``-l' W_g l / 2 + l' t_g``, with
    ``W_g = (S^2 + A_g^-1)^-1``, computed as ``S^-1 Q (I + Q)^-1 S^-1`` with ``Q = S A_g S`` (no
    inverse of ``A_g``, singular in directions the data do not measure), and
    ``t_g = (I + A_g S^2)^-1 b_g`` (``basis``' ``value_information`` and ``value_data``, weighed
    at ``log_noise`` as in :func:`frame`). A group outside the frame has ``A_g = 0``: nothing; with
    ``every``, every group says what its data measure at its fit given the population, in the frame
    or not (``level_information``, ``level_data``; :func:`bayescale.model.pilot.pooled_basis`).
    """
    measured = (basis.level_information, basis.level_data) if every else (basis.value_information, basis.value_data)
    information, data = weighed(basis, log_noise, *measured)
    q = within[:, None] * information * within[None, :]
    factor = cholesky(q + jnp.eye(q.shape[-1]))  # I + Q
    # W = S^-1 Q (I + Q)^-1 S^-1 = S^-1 (I - (I + Q)^-1) S^-1; (I + A S^2)^-1 b = S^-1 (I + Q)^-1 S b
    inverse = jax.vmap(lambda f: solve_upper(f, solve_lower(f, jnp.eye(f.shape[-1]))))(factor)
    weight = (jnp.eye(q.shape[-1]) - inverse) / (within[:, None] * within[None, :])
    return weight, jnp.einsum("gij,gj->gi", inverse, within * data) / within


def scale_frame(
    location: jnp.ndarray,
    spread: jnp.ndarray,
    tau: jnp.ndarray,
    levels: jnp.ndarray,
    basis: PooledBasis,
    values: jnp.ndarray,
    centred: jnp.ndarray,
    log_noise=None,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per group, the mean and sd ``(groups,)`` of its scale ``s_g`` given the population and what pins it.

    With a scale per group (``ScalingModel(..., group_scale=True)``) a group's pooled values
    scatter about ``M + s_g e`` (``levels``: ``e``, 1.0 on the level terms, 0.0 on exponents),
    ``s_g ~ Normal(0, tau)``. Sampled as ``s_g = mean + sd * v_g`` with ``v_g`` standard, from
    the Gaussian conditional of ``s_g`` (the group's data through its own fit given the
    population: ``A_g``, ``b_g`` of :func:`location_data` with ``every``):

    - in the frame, where the values are sampled after it, given the population and the data
      with the values integrated out: precision ``1 / tau^2 + e' W_g e``, mean
      ``e' (t_g - W_g M) / precision``;
    - outside it, where the coordinates are sampled first, given them (``values``: each
      value without its scale's shift, ``x = x0 + s e~`` with ``e~ = (1 - c) e``, ``c`` the
      ``centred`` mask): the centred level terms through the population, the others through
      the data, precision ``1 / tau^2 + sum_k c_k e_k / S_k^2 + e~' A_g e~``, mean
      ``(sum_k c_k e_k (x_k - M_k) / S_k^2 + e~' (b_g - A_g x0)) / precision``.

    So ``v_g`` is the group's standardised scale where its data (or its centred values) pin
    it, and its non-centred scale where only the population does, at every ``tau`` the chain
    visits (module docstring). A group of one or two runs pins its level and nothing else: its
    shape deviations sampled non-centred, its scale given them.
    """
    weight, told = location_data(spread, basis, log_noise, every=True)
    in_precision = 1.0 / tau**2 + jnp.einsum("i,gij,j->g", levels, weight, levels)
    in_mean = (told - jnp.einsum("gij,j->gi", weight, location)) @ levels / in_precision
    information, data = weighed(basis, log_noise, basis.level_information, basis.level_data)
    known, moved = centred * levels / spread**2, (1.0 - centred) * levels
    out_precision = 1.0 / tau**2 + jnp.sum(known, axis=-1) + jnp.einsum("gi,gij,gj->g", moved, information, moved)
    told_out = data - jnp.einsum("gij,gj->gi", information, values)
    out_mean = (jnp.sum(known * (values - location), axis=-1) + jnp.sum(moved * told_out, axis=-1)) / out_precision
    framed = basis.framed > 0
    precision = jnp.where(framed, in_precision, out_precision)
    return jnp.where(framed, in_mean, out_mean), 1.0 / jnp.sqrt(precision)


def level_frame(
    z: jnp.ndarray,
    centred: jnp.ndarray,
    levels: jnp.ndarray,
    location: jnp.ndarray,
    spread: jnp.ndarray,
    prior_loc: jnp.ndarray,
    prior_scale: jnp.ndarray,
    basis: PooledBasis,
    evidence,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Outside the frame, each group's standard coordinates ``(groups, K)`` with its level sampled given the rest.

    A group outside the frame has its values sampled as without the pilot, ``x = a + b z`` (centred, ``a, b = loc,
    scale``; or not, ``a, b = M, S``: ``centred``). Where its level terms (``levels``: 1.0 on the law's terms in the
    target's units) are all non-centred (a run or a few: its design measures none of them), its
    rows pin its loss level and little else, and hold ``z`` on a thin slab whose place moves with the population: at
    a small spread, a funnel. So one direction ``w`` of ``z`` is sampled given the others, the one along which the
    level moves at least cost under the population: ``w`` proportional to ``S`` times each level term's share of the
    group's loss (``A_g e``, from the pilot's information, :func:`level_shares`; a direction fixed by the spreads,
    not by ``z``). The reflection ``H = I - 2 h h' / h'h``, ``h = p + w`` (``H p = -w``; ``h`` never vanishes),
    takes one slot, the pivot (the first level term), onto ``w``, and that slot holds the move's standardised
    conditional given the others: with ``x0`` the values at zero move, ``evidence(x0, d)`` gives per group what its
    rows say of a move ``t`` along ``d = -S w``, the law linearised at ``x0`` (``sum_i c_i j_i r_i`` and ``sum_i c_i
    j_i^2``: :func:`bayescale.model.build.level_evidence`), so ``t`` has precision ``P = 1 + sum_i c_i j_i^2`` (its
    prior is ``Normal(0, 1)``, exactly) and mean ``sum_i c_i j_i r_i / P``. The slot is ``mean + u / sqrt(P)``: the
    group's standardised level where its rows pin it, its non-centred one where only the population does, at every
    spread the chain visits. The reflection has unit Jacobian and the slot's map ``P^-1/2``: returns the coordinates
    to map (``a + b z``) and ``log P^-1/2`` per group (0, and ``z`` as it is, for a group in the frame or with a
    centred level term). ``group_scale=True``'s scale is conditioned the same way (:func:`scale_frame`).
    """
    active, pivot, w, h = _level_pieces(centred, levels, spread, basis)
    rest = z * (1.0 - pivot)
    z0 = _reflect(rest, h)
    x0 = centred * (prior_loc + prior_scale * z0) + (1.0 - centred) * (location + spread * z0)
    told, information = evidence(x0, -spread * w)
    precision = 1.0 + information
    mean, sd = told / precision, 1.0 / jnp.sqrt(precision)
    mapped = z0 - (mean + sd * jnp.sum(z * pivot, axis=-1))[:, None] * w
    return jnp.where(active[:, None], mapped, z), jnp.where(active, jnp.log(sd), 0.0)


def level_start(
    z: jnp.ndarray, centred: jnp.ndarray, levels: jnp.ndarray, spread: jnp.ndarray, basis: PooledBasis
) -> jnp.ndarray:
    """The sites that :func:`level_frame` maps to coordinates ``z`` with the level moved to its conditional mean
    (the slot at 0; where the chains start)."""
    active, pivot, _, h = _level_pieces(centred, levels, spread, basis)
    return jnp.where(active[:, None], _reflect(z, h) * (1.0 - pivot), z)  # H is its own inverse


def level_shares(basis: PooledBasis, levels: jnp.ndarray) -> jnp.ndarray:
    """Each level term's weight in what every group's data measure of its level, ``(groups, K)``: the pilot's
    information about the values times a shift of all level terms (``A_g e``), at least 0."""
    return jnp.maximum(jnp.einsum("gij,j->gi", basis.level_information, levels), 0.0)


def _level_pieces(centred, levels, spread, basis) -> tuple:
    """``(active, pivot, w, h)`` of :func:`level_frame`, per group."""
    n = (1.0 - centred) * levels  # (groups, K): the non-centred level terms
    q = n * spread * level_shares(basis, levels)
    size = jnp.sum(q**2, axis=-1)
    active = (basis.levelled > 0) & jnp.all(n == levels, axis=-1) & (size > 0)
    w = q / jnp.sqrt(jnp.where(active, size, 1.0))[:, None]  # 1 where unused: no sqrt'(0) in the gradient
    pivot = jax.nn.one_hot(jnp.argmax(levels > 0), n.shape[-1], dtype=q.dtype) * jnp.ones_like(q)
    return active, pivot, w, pivot + w


def _reflect(z, h) -> jnp.ndarray:
    """``H z`` with ``H = I - 2 h h' / h'h`` (:func:`level_frame`)."""
    return z - 2.0 * h * (jnp.sum(h * z, axis=-1) / jnp.sum(h * h, axis=-1))[:, None]


def weighed(basis: PooledBasis, log_noise, information: jnp.ndarray, data: jnp.ndarray) -> tuple:
    """The pilot's ``information`` ``(groups, K, K)`` and what it says (``data``, ``(groups, K)``: data or
    gradient) at the current noise scale ``log_noise`` (per group, or one value): a likelihood's information
    scales as ``sigma^-2``, so both times ``exp(2 (basis.log_noise - log_noise))``; ``None``: the pilot's."""
    if log_noise is None:
        return information, data
    weight_noise = jnp.exp(2.0 * (basis.log_noise - log_noise))
    return information * weight_noise[:, None, None], data * weight_noise[:, None]


def cholesky(a: jnp.ndarray) -> jnp.ndarray:
    """Lower Cholesky factors of a batch ``(..., K, K)`` of small SPD matrices, unrolled.

    Unrolled into elementwise operations over the batch (the matrices are 1x1 to 6x6, one
    per group, at every leapfrog step): with ``jnp.linalg.cholesky`` and
    ``jax.scipy.linalg.solve_triangular`` in the model, fits on this 2-core machine hung
    inside LAPACK's batched triangular solve (jaxlib 0.10.2; both chain methods, twice; a
    loop of batched solves alone did not hang).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[4.0, 2.0], [2.0, 5.0]])
    >>> np.asarray(cholesky(a)).tolist()
    [[2.0, 0.0], [1.0, 2.0]]
    """
    n = a.shape[-1]
    rows: list[list] = [[None] * n for _ in range(n)]
    zero = jnp.zeros(a.shape[:-2], dtype=a.dtype)
    for j in range(n):
        rows[j][j] = jnp.sqrt(a[..., j, j] - sum((rows[j][k] ** 2 for k in range(j)), zero))
        for i in range(j + 1, n):
            rows[i][j] = (a[..., i, j] - sum((rows[i][k] * rows[j][k] for k in range(j)), zero)) / rows[j][j]
    return jnp.stack([jnp.stack([rows[i][j] if j <= i else zero for j in range(n)], -1) for i in range(n)], -2)


def solve_lower(lower: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``L^-1 b`` for lower-triangular ``L`` ``(..., K, K)`` and ``b`` ``(..., K)``, unrolled (:func:`cholesky`)."""
    n = b.shape[-1]
    out: list = []
    for i in range(n):
        out.append((b[..., i] - sum((lower[..., i, k] * out[k] for k in range(i)), 0.0)) / lower[..., i, i])
    return jnp.stack(out, -1)


def solve_upper(lower: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``L'^-1 b`` for lower-triangular ``L`` ``(..., K, K)`` and ``b`` ``(..., K)``, unrolled (:func:`cholesky`)."""
    n = b.shape[-1]
    out: list = [None] * n
    for i in reversed(range(n)):
        out[i] = (b[..., i] - sum((lower[..., k, i] * out[k] for k in range(i + 1, n)), 0.0)) / lower[..., i, i]
    return jnp.stack(out, -1)
