"""The significance tests of `servicemap diff`, each a two-sided p-value (None when untestable).

- error rates: two-proportion z-test (pooled), or Fisher's exact test when a cell of the 2×2
  table expects fewer than `MIN_EXPECTED` counts (the z-test's normal approximation is poor
  there: 0 of 4 against 4 of 4 gives p = 0.005 by z, 0.029 exactly);
- latency: Mann–Whitney U (normal approximation with tie correction) from one side's rank sum;
- call volume: two Poisson counts over their time spans (conditional binomial z-test).
"""

from __future__ import annotations

import math

MIN_EXPECTED = 5.0
RELATIVE_TOLERANCE = 1e-7  # tables as likely as the one observed, up to rounding, count too


def two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact_p(errors0: int, calls0: int, errors1: int, calls1: int) -> float | None:
    """Two-sided Fisher exact test of a 2×2 table: the summed probability of every table with
    the same margins that is no more likely than the one observed (hypergeometric)."""
    if calls0 <= 0 or calls1 <= 0:
        return None
    errors = errors0 + errors1
    calls = calls0 + calls1
    low, high = max(0, errors - calls1), min(errors, calls0)
    whole = _log_comb(calls, errors)

    def log_p(x: int) -> float:
        return _log_comb(calls0, x) + _log_comb(calls1, errors - x) - whole

    observed = log_p(errors0)
    threshold = observed + math.log1p(RELATIVE_TOLERANCE)
    total = math.fsum(math.exp(lp) for x in range(low, high + 1) if (lp := log_p(x)) <= threshold)
    return min(total, 1.0)


def two_proportion_p(errors0: int, calls0: int, errors1: int, calls1: int) -> float | None:
    """Two-sided p-value that two error rates differ; None when a side has no calls.

    The pooled z-test, or Fisher's exact test when any cell expects fewer than MIN_EXPECTED.
    """
    if calls0 == 0 or calls1 == 0:
        return None
    pooled = (errors0 + errors1) / (calls0 + calls1)
    if pooled in (0.0, 1.0):
        return 1.0
    smallest = min(calls0, calls1) * min(pooled, 1 - pooled)
    if smallest < MIN_EXPECTED:
        return fisher_exact_p(errors0, calls0, errors1, calls1)
    se = math.sqrt(pooled * (1 - pooled) * (1 / calls0 + 1 / calls1))
    return two_sided_p((errors1 / calls1 - errors0 / calls0) / se)


def mann_whitney_p(n0: int, n1: int, rank_sum0: float, tie_term: float) -> float | None:
    """Two-sided p-value of the U test from side 0's rank sum; tie_term = Σ(t³ - t)."""
    if n0 == 0 or n1 == 0:
        return None
    n = n0 + n1
    u0 = rank_sum0 - n0 * (n0 + 1) / 2
    variance = n0 * n1 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    return two_sided_p((u0 - n0 * n1 / 2) / math.sqrt(variance))


def poisson_rates_p(count0: int, span0: float, count1: int, span1: float) -> float | None:
    """Two-sided p-value that two event counts over time spans have different rates."""
    if span0 <= 0 or span1 <= 0 or count0 + count1 == 0:
        return None
    n = count0 + count1
    share = span0 / (span0 + span1)
    return two_sided_p((count0 - n * share) / math.sqrt(n * share * (1 - share)))
