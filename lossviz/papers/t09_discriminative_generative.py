r"""Set-up of notebook T09: discriminative vs generative linear classifiers on Gaussian data.

Chenyu Zheng, Guoqiang Wu, Fan Bao, Yue Cao, Chongxuan Li, Jun Zhu, *Revisiting Discriminative vs.
Generative Classifiers: Theory and Implications*, ICML 2023, arXiv:2302.02334; which revisits
Andrew Y. Ng & Michael I. Jordan, *On Discriminative vs. Generative Classifiers: A comparison of
logistic regression and naive Bayes*, NeurIPS 2001: naive Bayes reaches its asymptotic error with
:math:`O(\log n)` samples, logistic regression needs :math:`O(n)` (``n`` = feature dimension).

Two classes with equal priors, ``x | y ~ N(mu_y, Sigma)``. Both classifiers are linear rules
``sign(w.x + b)``, so the test error is exact (no test sampling):
:math:`\tfrac12[\Phi(-(w\cdot\mu_1 + b)/s) + \Phi((w\cdot\mu_0 + b)/s)]`, :math:`s^2 = w^\top\Sigma w`.

* naive Bayes: Gaussian NB with the prior-weighted pooled per-feature variance (the linear rule
  of the authors' ``models/gaussnb.py``): :math:`w_j = (\hat\mu_{1j} - \hat\mu_{0j})/\hat\sigma_j^2`;
* logistic regression: scikit-learn ``LogisticRegression(C=1, solver="lbfgs")`` (the authors'
  ``lr_bgfs``).

Training sets are balanced (``m // 2`` per class, ``m`` even), so both classes are always present.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

D_GRID = (16, 32, 64, 128, 256)


def m_grid(d: int, *, start: int = 4, factor: float = 1.25, top: int = 12) -> list[int]:
    """Even sample sizes on a ``factor`` geometric grid from ``start`` to ``top * d``."""
    out, m = [], float(start)
    while m <= top * d:
        v = 2 * int(round(m / 2))
        if not out or v > out[-1]:
            out.append(v)
        m *= factor
    return out


def problem(kind: str, d: int = 64) -> dict:
    """Class means ``mu0, mu1`` and covariance ``cov`` (with a sampler ``chol``) of one set-up.

    * ``"easy"`` (the authors' easy mode): means -1 / +1 in every coordinate, variances ``d`` on
      the first ``d/2`` features and 1 on the rest;
    * ``"dilute"`` (control): unit variances, means -a / +a with ``a = sqrt(2/d)`` (per-feature
      separation ``2a = sqrt(8/d)``: the total signal stays fixed as ``d`` grows);
    * ``"dup"``: ``d - 4`` features with means -0.3 / +0.3 and the easy-mode variance pattern
      (``d - 4`` on the first half, 1 on the rest), plus 4 near-copies of one feature with means
      -0.5 / +0.5 (shared unit noise plus individual noise 0.1): naive Bayes counts it 4 times.
    """
    if kind == "easy":
        mu = np.ones(d)
        var = np.where(np.arange(d) < d // 2, float(d), 1.0)
        cov = np.diag(var)
    elif kind == "dilute":
        mu = np.full(d, math.sqrt(2.0 / d))
        cov = np.eye(d)
    elif kind == "dup":
        k = d - 4
        var = np.where(np.arange(k) < k // 2, float(k), 1.0)
        mu = np.concatenate([np.full(k, 0.3), np.full(4, 0.5)])
        cov = np.zeros((d, d))
        cov[:k, :k] = np.diag(var)
        cov[k:, k:] = np.ones((4, 4)) + 0.01 * np.eye(4)
    else:
        raise ValueError(f"`kind` must be 'easy', 'dilute' or 'dup', got {kind!r}")
    return {"mu0": -mu, "mu1": mu, "cov": cov, "chol": np.linalg.cholesky(cov), "kind": kind, "d": d}


def linear_error(w: np.ndarray, b: float, prob: dict) -> float:
    """Exact test error of ``sign(w.x + b)`` (class 1 when positive) under equal priors."""
    s = math.sqrt(max(float(w @ prob["cov"] @ w), 1e-300))
    return 0.5 * (norm.cdf(-(w @ prob["mu1"] + b) / s) + norm.cdf((w @ prob["mu0"] + b) / s))


def bayes_error(prob: dict) -> float:
    """``Phi(-Delta/2)`` with the Mahalanobis distance ``Delta`` between the class means."""
    diff = prob["mu1"] - prob["mu0"]
    delta = math.sqrt(float(diff @ np.linalg.solve(prob["cov"], diff)))
    return float(norm.cdf(-delta / 2))


def nb_asymptotic_error(prob: dict) -> float:
    """Error of naive Bayes with the true means and per-feature variances (its m -> inf limit)."""
    var = np.diag(prob["cov"])
    w = (prob["mu1"] - prob["mu0"]) / var
    b = -float(w @ (prob["mu1"] + prob["mu0"])) / 2
    return linear_error(w, b, prob)


def sample(prob: dict, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A balanced training set of ``m`` points (``m // 2`` per class)."""
    h = m // 2
    y = np.repeat([0, 1], [m - h, h])
    z = rng.standard_normal((m, prob["d"])) @ prob["chol"].T
    x = np.where(y[:, None] == 1, prob["mu1"], prob["mu0"]) + z
    return x, y


def fit_nb(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Gaussian naive Bayes with the prior-weighted pooled diagonal variance: a linear rule."""
    x0, x1 = x[y == 0], x[y == 1]
    p1 = len(x1) / len(x)
    m0, m1 = x0.mean(0), x1.mean(0)
    var = (1 - p1) * x0.var(0) + p1 * x1.var(0) + 1e-9
    w = (m1 - m0) / var
    b = -float(w @ (m1 + m0)) / 2 + math.log(p1 / (1 - p1))
    return w, b


def fit_lr(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """scikit-learn ``LogisticRegression(C=1, solver="lbfgs")``."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000).fit(x, y)
    return clf.coef_[0], float(clf.intercept_[0])


def errors_at(
    prob: dict, m: int, rng: np.random.Generator, draws: int = 10, methods=("nb", "lr")
) -> dict[str, float]:
    """Mean exact test error of NB and LR over ``draws`` training sets of size ``m``."""
    fits = {"nb": fit_nb, "lr": fit_lr}
    errs: dict = {k: [] for k in methods}
    for _ in range(draws):
        x, y = sample(prob, m, rng)
        for k in methods:
            errs[k].append(linear_error(*fits[k](x, y), prob))
    return {k: float(np.mean(v)) for k, v in errs.items()}


def m_star(
    prob: dict, seed: int, *, draws: int = 10, tol: float = 0.01, top: int = 12, methods=("nb", "lr")
) -> dict:
    """First ``m`` on the grid with mean error below Bayes + ``tol`` (the authors' stopping rule).

    Walks the grid until both classifiers have reached it (``None`` if one never does) and
    returns the learning curves computed so far.
    """
    rng = np.random.default_rng([seed, prob["d"], {"easy": 0, "dilute": 1, "dup": 2}[prob["kind"]]])
    target = bayes_error(prob) + tol
    found: dict = {k: None for k in methods}
    curve: dict = {"m": [], **{k: [] for k in methods}}
    for m in m_grid(prob["d"], top=top):
        e = errors_at(prob, m, rng, draws, methods)
        curve["m"].append(m)
        for k in methods:
            curve[k].append(e[k])
            if found[k] is None and e[k] < target:
                found[k] = m
        if all(v is not None for v in found.values()):
            break
    return {**found, "target": target, "bayes": target - tol, "curve": curve}


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of log y on log x."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


DUP_M = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)


def dup_curves(seed: int, *, draws: int = 10, d: int = 64) -> dict:
    """NB and LR learning curves on the ``dup`` set-up at :data:`DUP_M`."""
    prob = problem("dup", d)
    rng = np.random.default_rng([seed, d, 2, 7])
    out = {"m": list(DUP_M), "nb": [], "lr": []}
    for m in DUP_M:
        e = errors_at(prob, m, rng, draws)
        out["nb"].append(e["nb"])
        out["lr"].append(e["lr"])
    out["bayes"] = bayes_error(prob)
    out["nb_asymptotic"] = nb_asymptotic_error(prob)
    return out


def claim_statistics(seed: int, *, d_grid=D_GRID, draws: int = 10) -> dict:
    """Everything the notebook asserts for one seed."""
    easy = {d: m_star(problem("easy", d), seed, draws=draws) for d in d_grid}
    dilute = {
        d: m_star(problem("dilute", d), seed, draws=draws, methods=("nb",)) for d in (d_grid[0], d_grid[-1])
    }
    dup = dup_curves(seed, draws=draws)
    big = [d for d in d_grid if d >= 32]
    lr_ms = [easy[d]["lr"] for d in big]
    i32, i2048 = DUP_M.index(32), DUP_M.index(2048)
    return {
        "easy": easy,
        "dilute": dilute,
        "dup": dup,
        "lr_slope": loglog_slope(big, lr_ms) if None not in lr_ms else math.nan,
        "nb_ratio_256_32": easy[d_grid[-1]]["nb"] / easy[32]["nb"],
        "min_lr_over_nb": min(easy[d]["lr"] / easy[d]["nb"] for d in d_grid if d >= 64),
        "dilute_nb_ratio": dilute[d_grid[-1]]["nb"] / dilute[d_grid[0]]["nb"],
        "dup_lr_minus_nb_32": dup["lr"][i32] - dup["nb"][i32],
        "dup_nb_minus_lr_2048": dup["nb"][i2048] - dup["lr"][i2048],
    }
