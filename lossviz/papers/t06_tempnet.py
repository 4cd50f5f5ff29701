r"""Set-up of notebook T06: a temperature network (TempNet) on top of a frozen toy language model.

Zi-Hao Qiu, Siqi Guo, Mao Xu, Tuo Zhao, Lijun Zhang, Tianbao Yang, *To Cool or not to Cool?
Temperature Network Meets Large Foundation Models via DRO*, ICML 2024, arXiv:2404.04575.

The KL-constrained DRO loss of one context with frozen logits ``h`` and label ``y`` is

.. math:: F(\tau) = \tau \log \tfrac1V \sum_k e^{(h_k - h_y)/\tau} + \tau\rho

(the authors' code: ``tau * CE(h / tau, y) + (rho - log V) * tau``). Its derivative in ``tau`` is
``rho - KL(softmax(h / tau) || uniform)``, which does not depend on ``y``: the minimiser
``tau*(h)`` puts the tempered distribution at ``KL = rho`` from uniform. It is computed here with
:func:`lossviz.losses.dro_optimal_temperature` (scipy ``brentq``) inside ``[TAU_MIN, TAU_MAX]``.

Toy: ``V = 50`` tokens; context ``i`` has ``k_i`` plausible next tokens (a random subset ``S``),
``p_i = 0.9 U(S) + 0.1 U(V)``, frozen logits ``h_i = log p_i``, labels ``y ~ p_i``. TempNet is the
authors' architecture scaled down: logits minus their max, L2-normalised,
``Linear(V, 64)-Sigmoid-Dropout(0.5)-Linear(64, 64)``, a softmax-weighted difference of two learned
vectors, and a sigmoid into ``[tau_min, tau_max]``. It is trained by Adam on the DRO loss with
the language model frozen (the paper's "learned on top of a pretrained model" mode).

The general parts are in :mod:`lossviz.losses`: :class:`~lossviz.losses.TempNet`,
:func:`~lossviz.losses.kl_dro_loss` (here also ``dro_loss``) and
:func:`~lossviz.losses.kl_to_uniform` (here also ``kl_uniform``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validate import check_float, check_int
from ..losses import TempNet, dro_optimal_temperature, kl_dro_loss, kl_to_uniform
from ..train import batch_loss, fit

KS = (1, 2, 4, 8, 16, 32)
TAU_MIN, TAU_MAX = 0.05, 5.0
RHO = 0.3
RHO_GRID = (0.1, 0.3, 0.5, 1.0)


def toy_lm(
    seed: int,
    *,
    vocab: int = 50,
    ks=KS,
    n_train: int = 4000,
    n_test: int = 1000,
    noise: float = 0.1,
    device="cpu",
) -> dict:
    """Frozen logits ``h = log p`` and sampled labels of a toy next-token model.

    Each context draws ``k`` uniformly from ``ks`` and a random subset of ``k`` of the ``vocab``
    tokens; ``p = (1 - noise) U(subset) + noise U(vocab)``. Returns float32 tensors on ``device``:
    ``h_train, y_train, k_train, h_test, y_test, k_test``.
    """
    seed = check_int(seed, "seed", minimum=0)
    vocab = check_int(vocab, "vocab", minimum=2)
    noise = check_float(noise, "noise", positive=True, maximum=1.0)
    ks = tuple(check_int(k, "ks", minimum=1, maximum=vocab) for k in ks)
    if not ks:
        raise ValueError("`ks` must not be empty")
    rng = np.random.default_rng([seed, 6])
    out = {}
    for part, n in (
        ("train", check_int(n_train, "n_train", minimum=1)),
        ("test", check_int(n_test, "n_test", minimum=1)),
    ):
        k = rng.choice(np.asarray(ks), size=n)
        p = np.full((n, vocab), noise / vocab)
        for i in range(n):
            p[i, rng.choice(vocab, size=k[i], replace=False)] += (1 - noise) / k[i]
        y = np.array([rng.choice(vocab, p=row) for row in p])
        out[f"h_{part}"] = torch.tensor(np.log(p), dtype=torch.float32, device=device)
        out[f"y_{part}"] = torch.tensor(y, dtype=torch.long, device=device)
        out[f"k_{part}"] = torch.tensor(k, dtype=torch.long, device=device)
    return out


# The general parts live in lossviz.losses; the names below are the ones this notebook uses.
dro_loss = kl_dro_loss
kl_uniform = kl_to_uniform


def tau_cross_entropy(h: torch.Tensor, y: torch.Tensor, tau) -> torch.Tensor:
    """Per-context cross-entropy of ``softmax(h / tau)`` at the label ``y``."""
    tau = tau.reshape(-1, 1) if isinstance(tau, torch.Tensor) else tau
    return nn.functional.cross_entropy(h / tau, y, reduction="none")


def train_tempnet(
    h: torch.Tensor,
    y: torch.Tensor,
    *,
    rho: float = RHO,
    seed: int = 0,
    steps: int = 1500,
    batch_size: int = 256,
    lr: float = 3e-3,
    hidden: int = 64,
) -> TempNet:
    """Adam on the DRO loss over the frozen logits ``h`` (through :func:`lossviz.train.fit`,
    shuffled mini-batches); returns the TempNet in eval mode.

    Seeded: the global torch RNG is restored afterwards.
    """
    rho = check_float(rho, "rho", positive=True)
    steps = check_int(steps, "steps", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_float(lr, "lr", positive=True)
    if h.ndim != 2 or y.shape != h.shape[:1]:
        raise ValueError(f"`h` must be (n, V) and `y` (n,), got {tuple(h.shape)} and {tuple(y.shape)}")
    h = h.detach()
    with torch.random.fork_rng(devices=[]):  # the initialisation draws from the global generator
        torch.manual_seed(check_int(seed, "seed", minimum=0))
        net = TempNet(h.shape[1], hidden, tau_min=TAU_MIN, tau_max=TAU_MAX).to(device=h.device, dtype=h.dtype)
    loss = batch_loss(lambda m, b: dro_loss(b[0], b[1], m(b[0]), rho).mean())
    fit(
        net,
        loss,
        (h, y),
        steps=steps,
        batch_size=batch_size,
        optimizer="adam",
        lr=lr,
        seed=seed,
        progress=False,
    )
    return net.eval()


def optimal_taus(h: torch.Tensor, rho: float, *, bounds=(TAU_MIN, TAU_MAX)) -> np.ndarray:
    """Per-context ``tau*`` (the DRO minimiser, label-free) by scipy ``brentq``."""
    hn = h.detach().cpu().double().numpy()
    return np.array([dro_optimal_temperature(row, rho, bounds=bounds) for row in hn])


TAU_GRID = np.geomspace(TAU_MIN, TAU_MAX, 61)


def best_fixed_tau(h: torch.Tensor, y: torch.Tensor, rho: float, *, grid=TAU_GRID) -> float:
    """The grid temperature with the lowest mean DRO loss on ``(h, y)``."""
    with torch.no_grad():
        vals = [float(dro_loss(h, y, float(t), rho).mean()) for t in grid]
    return float(grid[int(np.argmin(vals))])


def evaluate(lm: dict, *, rho: float = RHO, seed: int = 0, steps: int = 1500) -> dict:
    """Train TempNet on the training contexts and measure everything on the held-out ones."""
    net = train_tempnet(lm["h_train"], lm["y_train"], rho=rho, seed=seed, steps=steps)
    h, y, k = lm["h_test"], lm["y_test"], lm["k_test"].cpu().numpy()
    fixed = best_fixed_tau(lm["h_train"], lm["y_train"], rho)
    with torch.no_grad():
        tau = net(h)
        f_net = float(dro_loss(h, y, tau, rho).mean())
        f_fix = float(dro_loss(h, y, fixed, rho).mean())
        kl_net = kl_uniform(h, tau).cpu().numpy()
        kl_fix = kl_uniform(h, fixed).cpu().numpy()
        ce_net = float(tau_cross_entropy(h, y, tau).mean())
        ce_fix = float(tau_cross_entropy(h, y, fixed).mean())
        ce_model = float(tau_cross_entropy(h, y, 1.0).mean())
    tau = tau.cpu().numpy().astype(np.float64)
    tau_star = optimal_taus(h, rho)
    rel = np.abs(tau / tau_star - 1)
    groups = sorted(set(k.tolist()))
    return {
        "rho": rho,
        "k": k,
        "tau": tau,
        "tau_star": tau_star,
        "fixed_tau": fixed,
        "kl_net": kl_net,
        "kl_fixed": kl_fix,
        "groups": groups,
        "tau_by_k": {g: float(tau[k == g].mean()) for g in groups},
        "tau_star_by_k": {g: float(tau_star[k == g].mean()) for g in groups},
        "median_rel_err": float(np.median(rel)),
        "worst_group_rel_err": max(float(np.median(rel[k == g])) for g in groups),
        "dro_net": f_net,
        "dro_fixed": f_fix,
        "dro_gain": (f_fix - f_net) / abs(f_fix),
        "kl_within": float(np.mean(np.abs(kl_net - rho) < 0.15)),
        "kl_std_ratio": float(kl_fix.std() / max(kl_net.std(), 1e-12)),
        "ce_net": ce_net,
        "ce_fixed": ce_fix,
        "ce_model": ce_model,
        "tau_cv": float(tau.std() / tau.mean()),
        "net": net,
    }


def claim_statistics(seed: int, *, rho: float = RHO, steps: int = 1500, device="cpu") -> dict:
    """Every asserted quantity for one seed: the mixed-ambiguity run and the all-``k = 8`` control."""
    main = evaluate(toy_lm(seed, device=device), rho=rho, seed=seed, steps=steps)
    ctrl = evaluate(toy_lm(seed, ks=(8,), device=device), rho=rho, seed=seed, steps=steps)
    k = main["k"]
    tau = main["tau"]
    return {
        "main": main,
        "control": ctrl,
        "median_rel_err": main["median_rel_err"],
        "worst_group_rel_err": main["worst_group_rel_err"],
        "tau_ratio_32_vs_le4": float(tau[k == 32].mean() / tau[k <= 4].mean()),
        "kl_within": main["kl_within"],
        "kl_std_ratio": main["kl_std_ratio"],
        "dro_gain": main["dro_gain"],
        "ce_net": main["ce_net"],
        "ce_fixed": main["ce_fixed"],
        "ce_model": main["ce_model"],
        "control_tau_cv": ctrl["tau_cv"],
        "control_gain": ctrl["dro_gain"],
    }
