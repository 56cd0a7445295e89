#!/usr/bin/env python3
"""Critical values (p = 0.001) of the two chi-square statistics in
l1/contracts/test/Sampling.t.sol, for committees of k = 48 drawn uniformly from n = 100.

Each cell of the test is a count over N epochs of a per-epoch indicator: "validator v is a
member" (p = k/n) or "validators v and v+1 are both members" (p = k(k-1)/(n(n-1))). The test
divides each squared deviation by the binomial variance E(1 - p), so for large N its statistic is
sum_j lambda_j * chi2_1, where lambda_j are the eigenvalues of the cells' per-epoch correlation
matrix. Both matrices are circulant (the cells are arranged in a ring), so the eigenvalues have
a closed form; the tail of the weighted sum is computed with Imhof's (1961) integral.

- members: lambda = n/(n-1) ninety-nine times and 0 once (the counts always sum to N k), so the
  critical value is 148.23 * 100/99;
- adjacent pairs: overlapping pairs are positively correlated and the others slightly
  negatively, so the weights spread from 0.35 to 1.66 and the critical value is higher than
  chi2_100's.

Pure Python, no dependencies; takes about a minute.
"""
import math
from fractions import Fraction

N_VALIDATORS, COMMITTEE, P_VALUE = 100, 48, 0.001


def falling(a, b, m):
    """a (a-1) ... (a-m+1) / (b (b-1) ... (b-m+1)): P(m given validators are all members)."""
    return math.prod(Fraction(a - i, b - i) for i in range(m))


def circulant_weights(c0, c1, c_far, n):
    """Eigenvalues / c0 of the circulant matrix with diagonal c0, first off-diagonals c1 (both
    sides) and c_far elsewhere."""
    weights = []
    for j in range(n):
        far = sum(math.cos(2 * math.pi * j * m / n) for m in range(2, n - 1))
        value = float(c0) + 2 * float(c1) * math.cos(2 * math.pi * j / n) + float(c_far) * far
        weights.append(max(0.0, value / float(c0)))
    return [w for w in weights if w > 1e-12]


def tail(weights, x, steps=20_000):
    """P(sum_j w_j chi2_1 > x) by Imhof's integral (Simpson's rule)."""

    def integrand(u):
        if u == 0:
            return 0.5 * sum(weights) - 0.5 * x
        theta = 0.5 * sum(math.atan(w * u) for w in weights) - 0.5 * x * u
        log_rho = 0.25 * sum(math.log1p((w * u) ** 2) for w in weights)
        return math.sin(theta) / (u * math.exp(log_rho))

    upper = 50.0 / max(weights)
    h = upper / steps
    total = integrand(0) + integrand(upper)
    total += sum((4 if i % 2 else 2) * integrand(i * h) for i in range(1, steps))
    return 0.5 + total * h / 3 / math.pi


def critical(weights, p=P_VALUE, low=50.0, high=400.0):
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if tail(weights, mid) > p else (low, mid)
    return (low + high) / 2


def main():
    n, k = N_VALIDATORS, COMMITTEE
    p1, p2, p3, p4 = (falling(k, n, m) for m in (1, 2, 3, 4))
    # Members: Cov(v, w) = P(both) - p1^2 for every other validator w.
    members = circulant_weights(p1 * (1 - p1), p2 - p1 * p1, p2 - p1 * p1, n)
    # Adjacent pairs (v, v+1): neighbouring pairs share a validator (three members), the
    # others need four.
    pairs = circulant_weights(p2 * (1 - p2), p3 - p2 * p2, p4 - p2 * p2, n)
    print(f"members: critical value {critical(members):.3f} (p = {P_VALUE})")
    print(f"pairs:   critical value {critical(pairs):.3f} (p = {P_VALUE})")


if __name__ == "__main__":
    main()
