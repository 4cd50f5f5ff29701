r"""Set-up of notebook L13: attention-logit growth, output-logit growth and their fixes in a tiny Transformer.

M. Wortsman, P. J. Liu, L. Xiao, K. Everett, A. Alemi, B. Adlam, J. D. Co-Reyes, I. Gur,
A. Kumar, R. Novak, J. Pennington, J. Sohl-Dickstein, K. Xu, J. Lee, J. Gilmer, S. Kornblith,
*Small-scale proxies for large-scale Transformer training instabilities*, ICLR 2024,
arXiv:2309.14322.

The claim: small Transformers trained at a high learning rate show (1) attention-logit growth
(``max |q.k| / sqrt(d_h)`` explodes, attention becomes one-hot, the loss stalls), which
qk-layernorm removes, and (2) output-logit divergence (``log Z`` of the output softmax drifts far
from 0), which the z-loss ``c log^2 Z`` removes; with the mitigations the final loss depends much
less on the learning rate.

The toy (curriculum entry L13): the copy task (:func:`lossviz.data.copy_task`, vocabulary 32,
``a || a`` with ``|a| = 8``, loss on the 8 copied positions, chance ``log 32``), a
:class:`lossviz.models.TinyTransformer` (pre-LN, 2 layers, d = 32, 2 heads, MLP 4d, GELU, no
biases) in float32, AdamW ``betas=(0.9, 0.95)``, eps 1e-8, no weight decay, global-norm clipping
at 1 (a ``grad_hook``), batch 32, 200 steps (one pass over 6400 seeded sequences) through
:func:`lossviz.train.fit` with a ``LambdaLR`` scheduler: linear warm-up over the first 25 % of the
steps, then cosine to 0. Learning rates ``LRS``; variants ``base``, ``qk`` (qk-layernorm) and
``qk_z`` (qk-layernorm + z-loss ``c = 1e-3``), and the control ``base_z`` (z-loss without
qk-layernorm, at ``CONTROL_LRS``). Recorded per run: the training loss, the maximum
attention logit and the mean ``log Z`` of every step; at the end the cross-entropy and mean
``log Z`` on 512 fresh sequences.

What differs from the paper (see the notebook): 25 % warm-up instead of 5 % (qk-layernorm fails at
lr 0.3 with 5 % here); ``c = 1e-3`` instead of 1e-4 (200 steps instead of 1e5: the z-loss pull
accumulates over steps); the output logits grow *positive* (a predictable task) rather than drift
negative, and this does not hurt the loss, so the z-loss half reproduces only as "z-loss keeps
``log Z`` near 0". At lr 1 qk-layernorm also fails in most seeds from a different instability.

The z-loss here is PaLM's ``c log^2 Z`` (:func:`log_z_loss`), *not* the standardised-score
``lossviz.losses.z_loss`` of de Brebisson & Vincent, which shares the name.

Nothing here is asserted; :func:`claim_statistics` returns every number the notebook asserts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import data, models, train
from .._validate import check_float, check_int

VOCAB = 32
LENGTH = 8
D_MODEL = 32
DEPTH = 2
HEADS = 2
BATCH = 32
STEPS = 200
WARMUP = 0.25
N_EVAL = 512
LRS = (0.01, 0.03, 0.1, 0.3, 1.0)
Z_COEF = 1e-3
VARIANTS = {"base": (False, 0.0), "qk": (True, 0.0), "qk_z": (True, Z_COEF), "base_z": (False, Z_COEF)}
MAIN_VARIANTS = ("base", "qk", "qk_z")
CONTROL_LRS = (0.3, 1.0)  # base + z-loss (the specificity control) runs at these learning rates only
IGNORE = -100

__all__ = [
    "log_z_loss",
    "warmup_cosine",
    "make_model",
    "make_data",
    "train_run",
    "sweep",
    "lr_sensitivity",
    "statistics",
    "claim_statistics",
]


def _flat(logits: torch.Tensor, targets: torch.Tensor):
    keep = targets.reshape(-1) != IGNORE
    return logits.reshape(-1, logits.shape[-1])[keep], targets.reshape(-1)[keep]


def log_z_loss(logits: torch.Tensor, coef: float) -> torch.Tensor:
    r"""PaLM's z-loss ``coef * mean(log^2 Z)``, ``log Z = logsumexp`` over the last dimension.

    Its gradient in the logits is ``2 coef log Z softmax(z)``: it lowers every logit in
    proportion to its probability and vanishes at ``log Z = 0``.

    >>> import torch
    >>> z = torch.tensor([[0.0, 0.0]])
    >>> float(log_z_loss(z, 1.0)) == float(torch.log(torch.tensor(2.0)) ** 2)
    True
    """
    coef = check_float(coef, "coef", minimum=0.0)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("`logits` must be a floating tensor")
    return coef * torch.logsumexp(logits, -1).pow(2).mean()


def warmup_cosine(steps: int, warmup: float = WARMUP):
    """``callable(opt) -> LambdaLR``: linear warm-up over ``warmup * steps`` updates, then cosine to 0.

    The factor of update ``t + 1`` (``t`` updates done) is ``(t + 1) / w`` for ``t < w``, then
    ``(1 + cos(pi (t - w) / (steps - w))) / 2``.

    >>> import torch
    >>> p = torch.nn.Parameter(torch.zeros(1))
    >>> sched = warmup_cosine(8, 0.25)(torch.optim.SGD([p], lr=1.0))
    >>> [round(sched.lr_lambdas[0](t), 3) for t in range(8)]
    [0.5, 1.0, 1.0, 0.933, 0.75, 0.5, 0.25, 0.067]
    """
    steps = check_int(steps, "steps", minimum=1)
    warmup = check_float(warmup, "warmup", minimum=0.0, maximum=1.0)
    w = int(round(warmup * steps))

    def factor(t: int) -> float:
        if t < w:
            return (t + 1) / w
        return 0.5 * (1 + math.cos(math.pi * (t - w) / max(steps - w, 1)))

    return lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factor)


def make_model(seed: int, qk_layernorm: bool, *, device=None) -> models.TinyTransformer:
    """The curriculum's TinyTransformer (same init for every variant of a seed)."""
    return models.TinyTransformer(
        VOCAB,
        2 * LENGTH - 1,
        d_model=D_MODEL,
        depth=DEPTH,
        heads=HEADS,
        qk_layernorm=qk_layernorm,
        seed=seed,
        device=device,
        dtype=torch.float32,
    )


def make_data(seed: int, *, steps: int = STEPS, device=None) -> tuple[data.Dataset, data.Dataset]:
    """``(train, eval)``: ``BATCH * steps`` copy sequences (seed ``seed``) and ``N_EVAL`` fresh ones."""
    seed = check_int(seed, "seed", minimum=0)
    tr = data.copy_task(BATCH * steps, LENGTH, VOCAB, ignore_index=IGNORE, seed=seed, device=device)
    ev = data.copy_task(N_EVAL, LENGTH, VOCAB, ignore_index=IGNORE, seed=10_000 + seed, device=device)
    return tr, ev


@torch.no_grad()
def evaluate(model: models.TinyTransformer, ev: data.Dataset) -> dict[str, float]:
    """Cross-entropy and mean ``log Z`` on the copied positions of ``ev`` (the model is not changed)."""
    was = model.training
    model.eval()
    try:
        z, y = _flat(model(ev.x), ev.y)
    finally:
        model.train(was)
    return {"loss": float(F.cross_entropy(z, y)), "log_z": float(torch.logsumexp(z, -1).mean())}


def train_run(
    seed: int,
    lr: float,
    variant: str = "base",
    *,
    z_coef: float | None = None,
    steps: int = STEPS,
    warmup: float = WARMUP,
    datasets: tuple[data.Dataset, data.Dataset] | None = None,
    device=None,
) -> dict[str, Any]:
    """Train one variant at one learning rate; returns the curves and the final evaluation.

    ``z_coef`` overrides the variant's z-loss coefficient. Keys: ``loss`` (training CE per step,
    without the z-loss), ``attn`` (max attention logit per step), ``log_z`` (mean log Z per step),
    ``final_loss`` and ``final_log_z`` (on the eval set; NaN after a divergence), ``max_attn``
    (max over steps), ``diverged``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"`variant` must be one of {tuple(VARIANTS)}, got {variant!r}")
    lr = check_float(lr, "lr", positive=True)
    qk, coef = VARIANTS[variant]
    coef = coef if z_coef is None else check_float(z_coef, "z_coef", minimum=0.0)
    tr, ev = make_data(seed, steps=steps, device=device) if datasets is None else datasets
    model = make_model(seed, qk, device=device)
    ce_curve, logz_curve, attn_curve = [], [], []

    def loss_fn(logits, targets):
        z, y = _flat(logits, targets)
        ce = F.cross_entropy(z, y)
        lz = torch.logsumexp(z.detach(), -1)
        ce_curve.append(float(ce.detach()))
        logz_curve.append(float(lz.mean()))
        return ce + log_z_loss(z, coef) if coef else ce

    def clip(step, net, history):
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)

    def record(step, net, loss, history):
        if net.last_attention_max is not None:
            attn_curve.append(float(net.last_attention_max))

    def adamw(params):
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)

    hist = train.fit(
        model,
        loss_fn,
        (tr.x, tr.y),
        steps=steps,
        batch_size=BATCH,
        optimizer=adamw,
        scheduler=warmup_cosine(steps, warmup),
        grad_hook=clip,
        callbacks=[record],
        seed=seed,
        progress=False,
    )
    ok = not hist.diverged and all(math.isfinite(p.abs().max().item()) for p in model.parameters())
    final = evaluate(model, ev) if ok else {"loss": math.nan, "log_z": math.nan}
    return {
        "lr": lr,
        "variant": variant,
        "z_coef": coef,
        "loss": np.array(ce_curve),
        "log_z": np.array(logz_curve),
        "attn": np.array(attn_curve),
        "max_attn": float(np.nanmax(attn_curve)) if attn_curve else math.nan,
        "final_loss": final["loss"] if math.isfinite(final["loss"]) else math.nan,
        "final_log_z": final["log_z"],
        "diverged": not ok,
    }


def sweep(
    seed: int,
    lrs=LRS,
    variants=MAIN_VARIANTS,
    *,
    control_lrs=CONTROL_LRS,
    steps: int = STEPS,
    device=None,
) -> dict[tuple[str, float], dict]:
    """``{(variant, lr): train_run(...)}`` over ``variants x lrs``, plus ``("base_z", lr)`` for
    ``lr`` in ``control_lrs`` (``()`` for none). The data is built once, on ``device``."""
    ds = make_data(seed, steps=steps, device=device)
    grid = [(v, lr) for v in variants for lr in lrs]
    grid += [("base_z", lr) for lr in control_lrs if ("base_z", lr) not in grid]
    return {(v, lr): train_run(seed, lr, v, steps=steps, datasets=ds, device=device) for v, lr in grid}


def lr_sensitivity(losses, initial: float) -> float:
    r"""Wortsman et al.'s LR sensitivity: ``mean_lr [min(L(lr), L0) - L*]``, ``L* = min_lr L(lr)``.

    ``L0`` is the initial loss; a NaN (diverged) loss counts as ``L0``.

    >>> lr_sensitivity([0.1, 0.2, float("nan")], 3.0)
    1.0
    """
    x = np.asarray(losses, dtype=float)
    x = np.where(np.isfinite(x), np.minimum(x, initial), initial)
    return float(np.mean(x - x.min()))


def statistics(res: dict[tuple[str, float], dict]) -> dict[str, float]:
    """The numbers the notebook asserts, from a :func:`sweep` (plus ``z0_*`` for the control)."""
    lrs = sorted({lr for v, lr in res if v != "base_z"})
    init = math.log(VOCAB)
    out: dict[str, float] = {}
    nan_to = lambda v, fill: fill if not math.isfinite(v) else v  # noqa: E731
    hi = [lr for lr in lrs if lr >= 0.1]
    out["base_min_attn_hi"] = min(nan_to(res["base", lr]["max_attn"], math.inf) for lr in hi)
    out["base_min_loss_hi"] = min(nan_to(res["base", lr]["final_loss"], init) for lr in hi) / init
    top = [lr for lr in lrs if lr >= 0.3]
    out["base_min_attn_top"] = min(nan_to(res["base", lr]["max_attn"], math.inf) for lr in top)
    out["base_min_loss_top"] = min(nan_to(res["base", lr]["final_loss"], init) for lr in top) / init
    mid = [lr for lr in (0.1, 0.3) if lr in lrs]
    out["qk_max_attn_mid"] = max(nan_to(res["qk", lr]["max_attn"], math.inf) for lr in mid)
    out["qk_max_loss_mid"] = max(nan_to(res["qk", lr]["final_loss"], math.inf) for lr in mid)
    sens = {v: lr_sensitivity([res[v, lr]["final_loss"] for lr in lrs], init) for v in ("base", "qk")}
    out["sens_base"], out["sens_qk"] = sens["base"], sens["qk"]
    out["sens_ratio"] = sens["qk"] / sens["base"]
    out["qk_min_log_z_mid"] = min(nan_to(res["qk", lr]["final_log_z"], -math.inf) for lr in mid)
    if ("qk_z", 0.3) in res:
        lz, lz0 = res["qk_z", 0.3]["final_log_z"], res["qk", 0.3]["final_log_z"]
        out["z_abs_log_z_03"] = nan_to(abs(lz), math.inf)
        out["z_ratio_03"] = nan_to(abs(lz) / abs(lz0), math.inf)
    if ("qk_z", 0.1) in res:
        lz, lz0 = res["qk_z", 0.1]["final_log_z"], res["qk", 0.1]["final_log_z"]
        out["z_ratio_01"] = nan_to(abs(lz) / abs(lz0), math.inf)
    out["z_max_loss_mid"] = max(
        nan_to(res["qk_z", lr]["final_loss"], math.inf) for lr in mid if ("qk_z", lr) in res
    )
    ratios = [res["qk_z", lr]["max_attn"] / res["qk", lr]["max_attn"] for lr in mid if ("qk_z", lr) in res]
    out["z_attn_ratio_mid"] = nan_to(max(max(r, 1 / r) for r in ratios), math.inf) if ratios else math.nan
    out["ctrl_base_loss_003"] = nan_to(res["base", 0.03]["final_loss"], math.inf)
    out["ctrl_base_attn_003"] = nan_to(res["base", 0.03]["max_attn"], math.inf)
    lz, lz0 = res["qk_z", 0.01]["final_log_z"], res["qk", 0.01]["final_log_z"]
    out["ctrl_z_change_001"] = nan_to(abs(lz - lz0) / abs(lz0), math.inf)
    ctrl = [lr for lr in top if ("base_z", lr) in res]
    if ctrl:  # z-loss without qk-layernorm: the attention logits still explode and training stalls
        out["ctrl_basez_min_attn_top"] = min(nan_to(res["base_z", lr]["max_attn"], math.inf) for lr in ctrl)
        out["ctrl_basez_min_loss_top"] = (
            min(nan_to(res["base_z", lr]["final_loss"], init) for lr in ctrl) / init
        )
    out["qk_loss_lr1"] = nan_to(res["qk", 1.0]["final_loss"], math.inf) if ("qk", 1.0) in res else math.nan
    return out


def claim_statistics(seed: int, **kw) -> dict[str, float]:
    """:func:`statistics` of :func:`sweep` for one seed."""
    return statistics(sweep(seed, **kw))
