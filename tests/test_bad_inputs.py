"""A probe of bad inputs across the public API (REVIEW section B).

Cases are generated systematically: for each public function, a list of bad values per argument
(wrong type, wrong shape, NaN/inf, negative or zero sizes, empty tensors, wrong label dtypes,
mismatched lengths, unknown choices, models that cannot be differentiated...). A case passes when

* ``error`` cases: the call raises ``ValueError`` / ``TypeError`` (``RuntimeError`` where stated,
  e.g. ``torch.inference_mode``) whose message names the argument;
* ``nan`` cases (NaN logits in a loss): the result is NaN, as torch's own losses propagate it;
* ``same`` cases (inputs that must be accepted, e.g. int32 labels, a float64 model with float32
  data, a model returning a tuple): the result is finite and equals a reference computed the
  plain way.

A returned result where an error was expected, an error that does not name the argument, an
exception of another type, or a wrong/non-finite result are failures. The test prints every
failure and asserts a clear-error rate of at least 97%.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lossviz.losses as L
from lossviz import collapse, curvature, data, landscape, models, ntk, stats, train
from lossviz.testing import BNDropoutNet, snapshot

F64 = torch.float64
NAN, INF = float("nan"), float("inf")
ERR = (ValueError, TypeError)


@dataclass
class Case:
    func: str
    arg: str
    label: str
    thunk: Callable[[], Any]
    kind: str = "error"  # "error" | "nan" | "same"
    exc: tuple = ERR
    names: tuple[str, ...] = ()
    ref: Callable[[], Any] | None = None
    owner: str = ""  # REVIEW item owned by another change (reported, still counted)
    extra: dict = field(default_factory=dict)


CASES: list[Case] = []


def err(func, arg, label, thunk, *, exc=ERR, names=(), owner=""):
    CASES.append(Case(func, arg, label, thunk, "error", exc, names or (arg,), owner=owner))


def nan(func, arg, label, thunk):
    CASES.append(Case(func, arg, label, thunk, "nan"))


def same(func, arg, label, thunk, ref, *, owner=""):
    CASES.append(Case(func, arg, label, thunk, "same", ref=ref, owner=owner))


def _named(msg: str, names: tuple[str, ...]) -> bool:
    for n in names:
        if f"`{n}" in msg or f"'{n}'" in msg:
            return True
        if len(n) >= 3 and re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", msg):
            return True
    return False


def _as_tensors(out):
    if isinstance(out, torch.Tensor):
        return [out.detach()]
    if isinstance(out, (float, int, np.floating)):
        return [torch.tensor(float(out))]
    if isinstance(out, np.ndarray):
        return [torch.from_numpy(np.asarray(out, dtype=float))]
    if hasattr(out, "as_dict"):
        return [v for v in (_as_tensors_or_none(x) for x in out.as_dict().values()) if v is not None]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _as_tensors(o)]
    return []


def _as_tensors_or_none(x):
    if isinstance(x, torch.Tensor) and (x.is_floating_point()):
        return x.detach()
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return torch.from_numpy(x)
    if isinstance(x, float):
        return torch.tensor(x)
    return None


def run_case(c: Case) -> str | None:
    """``None`` when the case passes, else a one-line description of the failure."""
    if c.kind == "unchanged":
        return _run_unchanged(c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = c.thunk()
        except c.exc as e:
            if c.kind != "error":
                return f"raised {type(e).__name__}: {str(e)[:140]}"
            msg = str(e)
            return None if _named(msg, c.names) else f"unnamed {type(e).__name__}: {msg[:160]}"
        except Exception as e:  # noqa: BLE001 - every other exception is a failure of the probe
            return f"cryptic {type(e).__name__}: {str(e)[:160]}"
        if c.kind == "error":
            return f"silent: returned {type(out).__name__}"
        if c.kind == "nan":
            ts = _as_tensors(out)
            return None if ts and all(bool(torch.isnan(t).any()) for t in ts) else "NaN did not propagate"
        ref = c.ref()
        got, want = _as_tensors(out), _as_tensors(ref)
        if not got or len(got) != len(want):
            return f"result {type(out).__name__} not comparable with the reference"
        for g, w in zip(got, want):
            g, w = g.to(F64), w.to(F64)
            if g.shape != w.shape or not bool(torch.isfinite(g).all()):
                return f"non-finite or wrong-shaped result {tuple(g.shape)} vs {tuple(w.shape)}"
            if not torch.allclose(g, w, rtol=1e-4, atol=1e-6):
                return f"wrong result: max diff {float((g - w).abs().max()):.3g}"
        return None


def _run_unchanged(c: Case) -> str | None:
    """A bad input on a train-mode BatchNorm/Dropout model with ``.grad`` set: the call must raise
    its clear error (or succeed) and leave the model and the global RNG exactly as they were."""
    model = c.extra["model"]
    before = snapshot(model)
    state = torch.random.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            c.thunk()
            why = None if not c.extra.get("must_raise") else "silent: returned"
        except ERR as e:
            why = None if _named(str(e), c.names) else f"unnamed {type(e).__name__}: {str(e)[:140]}"
        except Exception as e:  # noqa: BLE001
            why = f"cryptic {type(e).__name__}: {str(e)[:140]}"
    diffs = before.differences(snapshot(model))
    if diffs:
        why = (why + "; " if why else "") + "model changed: " + ", ".join(diffs[:3])
    if not torch.equal(torch.random.get_rng_state(), state):
        why = (why + "; " if why else "") + "global RNG advanced"
    return why


def unchanged(func, arg, label, thunk, model, *, must_raise=True):
    CASES.append(
        Case(
            func,
            arg,
            label,
            thunk,
            "unchanged",
            names=(arg,),
            extra={"model": model, "must_raise": must_raise},
        )
    )


# ---------------------------------------------------------------------------------------------
# fixtures built once (tiny: the whole module runs in seconds)
G = torch.Generator().manual_seed(0)
Z = torch.randn(6, 4, generator=G, dtype=F64)
Y = torch.tensor([0, 1, 2, 3, 1, 0])
SOFT = torch.softmax(torch.randn(6, 4, generator=G, dtype=F64), dim=1)
X = torch.randn(12, 3, generator=G)
XY = torch.tensor([0, 1, 2] * 4)


def _net(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 3)).to(dtype)


NET = _net()
NET64 = _net(dtype=F64)
DROP = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 3))
INFNET = _net()
with torch.no_grad():
    INFNET[0].weight[0, 0] = INF
CE = F.cross_entropy


class TupleOut(nn.Module):
    """A model returning (logits, extra): its outputs go through ``output_fn`` (REVIEW B10)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x), x.sum()


class DictOut(TupleOut):
    def forward(self, x):
        return {"logits": self.net(x), "aux": x.sum()}


# ---------------------------------------------------------------------------------------------
# classification losses: every loss x every argument
CLASSIFICATION = {
    "tempered_cross_entropy": (
        lambda z, y, **kw: L.tempered_cross_entropy(z, y, kw.pop("tau", 1.0), **kw),
        True,
    ),
    "comp_sum": (lambda z, y, **kw: L.comp_sum(z, y, kw.pop("q", 0.5), **kw), True),
    "ldr_kl": (lambda z, y, **kw: L.ldr_kl(z, y, kw.pop("tau", 1.0), **kw), False),
    "aldr_kl": (lambda z, y, **kw: L.aldr_kl(z, y, kw.pop("tau0", 1.0), **kw), False),
    "crammer_singer_hinge": (L.crammer_singer_hinge, False),
    "ldr_kl_limit": (lambda z, y, **kw: L.ldr_kl_limit(z, y, kw.pop("which", "inf"), **kw), False),
    "z_loss": (L.z_loss, False),
    "stablemax_cross_entropy": (L.stablemax_cross_entropy, True),
    "soft_cross_entropy": (L.soft_cross_entropy, True),
}

for name, (fn, soft) in CLASSIFICATION.items():
    for label, z in [
        ("a string", "logits"),
        ("None", None),
        ("1-D", Z[0]),
        ("one class", Z[:, :1]),
        ("empty batch", Z[:0]),
        ("integer dtype", Z.long()),
        ("complex dtype", Z.to(torch.complex128)),
    ]:
        err(name, "logits", label, lambda fn=fn, z=z: fn(z, Y))
    for label, y in [
        ("label == K", torch.tensor([0, 1, 2, 4, 1, 0])),
        ("label -1", torch.tensor([0, 1, 2, -1, 1, 0])),
        ("wrong length", Y[:5]),
        ("2-D labels of wrong shape", Y[:, None]),
        ("bool labels", Y > 1),
        ("a string", "targets"),
        ("soft targets not summing to 1", torch.full((6, 4), 0.5, dtype=F64)),
        ("soft targets with NaN", torch.full((6, 4), NAN, dtype=F64)),
    ]:
        err(name, "targets", label, lambda fn=fn, y=y: fn(Z, y))
    for bad in ("avg", None, 1):
        err(name, "reduction", repr(bad), lambda fn=fn, bad=bad: fn(Z, Y, reduction=bad))
    for bad in ("x", 1.5):
        err(name, "ignore_index", repr(bad), lambda fn=fn, bad=bad: fn(Z, Y, ignore_index=bad))
    zn = Z.clone()
    zn[2, 1] = NAN
    nan(name, "logits", "NaN logit propagates", lambda fn=fn, zn=zn: fn(zn, Y))
    for dt in (torch.int32, torch.uint8, torch.int8):
        same(name, "targets", f"{dt} labels", lambda fn=fn, dt=dt: fn(Z, Y.to(dt)), lambda fn=fn: fn(Z, Y))
    yi = Y.clone()
    yi[1] = -100
    same(
        name,
        "ignore_index",
        "-100 padding",
        lambda fn=fn, yi=yi: fn(Z, yi),
        lambda fn=fn, yi=yi: fn(Z[yi != -100], Y[yi != -100]),
    )
    if soft:
        same(
            name,
            "targets",
            "soft targets (n, K)",
            lambda fn=fn: fn(Z, SOFT),
            lambda fn=fn: fn(Z, SOFT, reduction="none").mean(),
        )
    else:
        err(name, "targets", "soft targets for a hard-label loss", lambda fn=fn: fn(Z, SOFT))

for name, arg in [("tempered_cross_entropy", "tau"), ("ldr_kl", "tau"), ("aldr_kl", "tau0")]:
    fn = CLASSIFICATION[name][0]
    for bad in (0.0, -1.0, NAN, INF, "1"):
        err(name, arg, repr(bad), lambda fn=fn, arg=arg, bad=bad: fn(Z, Y, **{arg: bad}))
for bad in (-2.0, NAN, INF, "q"):
    err("comp_sum", "q", repr(bad), lambda bad=bad: L.comp_sum(Z, Y, bad))
for name in ("ldr_kl", "crammer_singer_hinge", "aldr_kl"):
    fn = CLASSIFICATION[name][0]
    for bad in (-1.0, NAN):
        err(name, "margin", repr(bad), lambda fn=fn, bad=bad: fn(Z, Y, margin=bad))
err("ldr_kl", "normalize", "'yes'", lambda: L.ldr_kl(Z, Y, 1.0, normalize="yes"))
for bad in (0.5, 1.0, NAN):
    err("aldr_kl", "alpha", repr(bad), lambda bad=bad: L.aldr_kl(Z, Y, 1.0, alpha=bad))
for bad in (0, 1.5):
    err("aldr_kl", "iters", repr(bad), lambda bad=bad: L.aldr_kl(Z, Y, 1.0, iters=bad))
err("ldr_kl_limit", "which", "'bogus'", lambda: L.ldr_kl_limit(Z, Y, "bogus"))
for arg, bad in [("a", 0.0), ("a", -1.0), ("a", NAN), ("b", NAN), ("b", "2")]:
    err("z_loss", arg, repr(bad), lambda arg=arg, bad=bad: L.z_loss(Z, Y, **{arg: bad}))
for bad in (torch.int32, "bogus", 3):
    err(
        "stablemax_cross_entropy",
        "dtype",
        repr(bad),
        lambda bad=bad: L.stablemax_cross_entropy(Z, Y, dtype=bad),
    )

# StableMax, Softmax Collapse
for label, z in [("a string", "z"), ("integer numpy", np.array([1, 2])), ("complex", Z.to(torch.complex128))]:
    err("stablemax", "logits", label, lambda z=z: L.stablemax(z))
same("stablemax", "logits", "numpy float array", lambda: L.stablemax(Z.numpy()), lambda: L.stablemax(Z))
err("stablemax", "dtype", "'bogus'", lambda: L.stablemax(Z, dtype="bogus"))
for arg, kw in [
    ("dtype", {"dtype": torch.int32}),
    ("dtype", {"dtype": "bogus"}),
    ("criterion", {"criterion": "x"}),
]:
    err("softmax_collapse", arg, repr(kw), lambda kw=kw: L.softmax_collapse(Z, Y, **kw))
err("softmax_collapse", "targets", "label == K", lambda: L.softmax_collapse(Z, Y + 1))
err("softmax_collapse", "logits", "1-D", lambda: L.softmax_collapse(Z[0], Y[:1]))

# Z-loss, spherical family
W = torch.randn(4, 5, generator=G, dtype=F64)
H = torch.randn(6, 5, generator=G, dtype=F64)
same(
    "z_loss_spherical",
    "targets",
    "uint8 labels",
    lambda: L.z_loss_spherical(H, W, Y.to(torch.uint8)),
    lambda: L.z_loss(H @ W.T, Y),
)
for arg, call in [
    ("weight", lambda: L.z_loss_spherical(H, W[:, :4], Y)),
    ("weight", lambda: L.z_loss_spherical(H, W[0], Y)),
    ("h", lambda: L.z_loss_spherical(H[0], W, Y)),
    ("h", lambda: L.z_loss_spherical(H.long(), W, Y)),
    ("h", lambda: L.z_loss_spherical(H * NAN, W, Y)),
    ("targets", lambda: L.z_loss_spherical(H, W, Y + 1)),
    ("targets", lambda: L.z_loss_spherical(H, W, Y[:4])),
    ("targets", lambda: L.z_loss_spherical(H, W, Y > 0)),
    ("targets", lambda: L.z_loss_spherical(H, W, Y.double())),
    ("stats", lambda: L.z_loss_spherical(H, W, Y, stats="s")),
    ("stats", lambda: L.z_loss_spherical(H, W, Y, stats=L.spherical_stats(W[:3]))),
    ("bias", lambda: L.z_loss_spherical(H, W, Y, bias=torch.zeros(3, dtype=F64))),
    ("a", lambda: L.z_loss_spherical(H, W, Y, a=0.0)),
    ("reduction", lambda: L.z_loss_spherical(H, W, Y, reduction="avg")),
    ("bias", lambda: L.spherical_stats(W, torch.zeros(3, dtype=F64))),
    ("weight", lambda: L.spherical_stats(W[0])),
    ("weight", lambda: L.spherical_stats(W * INF)),
]:
    err("z_loss_spherical", arg, "bad", call)
err("z_scores", "logits", "1-D", lambda: L.z_scores(Z[0]))

# contrastive losses
Z1, Z2 = torch.randn(5, 3, generator=G, dtype=F64), torch.randn(5, 3, generator=G, dtype=F64)
for fname, fn in [
    ("info_nce", lambda a, b, **kw: L.info_nce(a, b, kw.pop("tau", 0.1), **kw)),
    ("robust_contrastive_loss", lambda a, b, **kw: L.robust_contrastive_loss(a, b, kw.pop("tau", 0.5), **kw)),
]:
    err(fname, "z1", "a string", lambda fn=fn: fn("z", Z2))
    err(fname, "z1", "1-D", lambda fn=fn: fn(Z1[0], Z2))
    err(fname, "z1", "one sample", lambda fn=fn: fn(Z1[:1], Z2[:1]))
    err(fname, "z1", "NaN", lambda fn=fn: fn(Z1 * NAN, Z2))
    err(fname, "z2", "shape mismatch", lambda fn=fn: fn(Z1, Z2[:4]))
    err(fname, "z2", "integer dtype", lambda fn=fn: fn(Z1, Z2.long()))
    for bad in (0.0, -1.0, NAN, "t"):
        err(fname, "tau", repr(bad), lambda fn=fn, bad=bad: fn(Z1, Z2, tau=bad))
    err(fname, "reduction", "'avg'", lambda fn=fn: fn(Z1, Z2, reduction="avg"))
err(
    "robust_contrastive_loss",
    "tau",
    "wrong length",
    lambda: L.robust_contrastive_loss(Z1, Z2, torch.ones(4, dtype=F64)),
)
err(
    "robust_contrastive_loss",
    "tau",
    "a negative entry",
    lambda: L.robust_contrastive_loss(Z1, Z2, -torch.ones(5, dtype=F64)),
)
for bad in (-0.1, NAN):
    err(
        "robust_contrastive_loss",
        "rho",
        repr(bad),
        lambda bad=bad: L.robust_contrastive_loss(Z1, Z2, 0.5, rho=bad),
    )
S = torch.randn(4, 6, generator=G, dtype=F64)
for arg, call in [
    ("similarities", lambda: L.info_nce_from_similarities(S[0])),
    ("similarities", lambda: L.info_nce_from_similarities(S * NAN)),
    ("similarities", lambda: L.info_nce_from_similarities(S.T)),
    ("similarities", lambda: L.info_nce_from_similarities(torch.full((4, 6), INF, dtype=F64))),
    ("positives", lambda: L.info_nce_from_similarities(S, torch.tensor([0, 1, 2, 6]))),
    ("positives", lambda: L.info_nce_from_similarities(S, torch.tensor([0, 1, 2]))),
    ("positives", lambda: L.info_nce_from_similarities(S, torch.tensor([0.0, 1, 2, 3]))),
    ("tau", lambda: L.info_nce_from_similarities(S, None, 0.0)),
    ("similarities", lambda: L.negative_weights("s", 0.1)),
    ("tau", lambda: L.negative_weights(S[0], -1.0)),
    ("z", lambda: L.uniformity(Z1[:1])),
    ("t", lambda: L.uniformity(Z1, t=0.0)),
    ("z", lambda: L.uniformity(Z1[0])),
    ("labels", lambda: L.tolerance(Z1, torch.tensor([0, 1, 2]))),
    ("labels", lambda: L.tolerance(Z1, torch.arange(5))),
    ("labels", lambda: L.tolerance(Z1, torch.ones(5))),
    ("taus", lambda: L.penalty_distribution([-1.0])),
    ("taus", lambda: L.penalty_distribution([NAN])),
    ("similarities", lambda: L.penalty_distribution([1.0], np.ones((2, 2)))),
    ("similarities", lambda: L.penalty_distribution([1.0], [0.5])),
    ("a", lambda: L.dro_objective([1.0], [1.0], 0.1)),
    ("taus", lambda: L.dro_objective([1.0, 0.0], [0.0], 0.1)),
    ("rho", lambda: L.dro_objective([1.0, 0.0], [1.0], -1.0)),
    ("rho", lambda: L.dro_optimal_temperature([1.0, 0.0], 0.0)),
    ("a", lambda: L.dro_optimal_temperature([NAN, 0.0], 0.1)),
    ("bounds", lambda: L.dro_optimal_temperature([1.0, 0.0], 0.1, bounds=(-1.0, 1.0))),
]:
    err(arg if arg in ("similarities", "positives") else "contrastive helpers", arg, "bad", call)

# mixup
XM = torch.randn(6, 3, generator=G)
same(
    "mixup",
    "y",
    "int32 labels",
    lambda: L.mixup(XM, Y.to(torch.int32), 4, seed=0).targets,
    lambda: L.mixup(XM, Y, 4, seed=0).targets,
)
for arg, call in [
    ("x", lambda: L.mixup("x", Y, 4)),
    ("x", lambda: L.mixup(XM.long(), Y, 4)),
    ("x", lambda: L.mixup(XM * NAN, Y, 4)),
    ("y", lambda: L.mixup(XM, Y[:5], 4)),
    ("y", lambda: L.mixup(XM, Y + 4, 4)),
    ("y", lambda: L.mixup(XM, Y.double(), 4)),
    ("y", lambda: L.mixup(XM, Y > 0, 4)),
    ("num_classes", lambda: L.mixup(XM, Y, 0)),
    ("num_classes", lambda: L.mixup(XM, Y, 2.5)),
    ("alpha", lambda: L.mixup(XM, Y, 4, alpha=0.0)),
    ("alpha", lambda: L.mixup(XM, Y, 4, alpha=NAN)),
    ("per_sample", lambda: L.mixup(XM, Y, 4, per_sample="yes")),
    ("seed", lambda: L.mixup(XM, Y, 4, seed=-1)),
    ("seed", lambda: L.mixup(XM, Y, 4, seed=0, generator=torch.Generator())),
    ("generator", lambda: L.mixup(XM, Y, 4, generator="g")),
]:
    err("mixup", arg, "bad", call)

# comp-sum bounds and analytic views
for arg, call in [
    ("q", lambda: L.comp_sum_bound(NAN, 3)),
    ("q", lambda: L.comp_sum_bound(-3.0, 3)),
    ("num_classes", lambda: L.comp_sum_bound(0.0, 1)),
    ("num_classes", lambda: L.comp_sum_bound(0.0, 2.5)),
    ("t", lambda: L.comp_sum_bound(0.0, 3, t=[1.5])),
    ("t", lambda: L.comp_sum_bound(0.0, 3, t=[NAN])),
    ("q", lambda: L.comp_sum_bound_inverse([0.1], "q", 3)),
    ("p", lambda: L.comp_sum_conditional_regret(np.ones((2, 2)), np.full((2, 2), 0.5), 0.0)),
    (
        "s",
        lambda: L.comp_sum_conditional_regret(np.full((2, 2), 0.5), np.array([[1.0, 0.0], [0.5, 0.5]]), 0.0),
    ),
    ("loss_fn", lambda: L.logit_surface(3)),
    ("num", lambda: L.logit_surface(L.tempered_cross_entropy, num=1)),
    ("extent", lambda: L.logit_surface(L.tempered_cross_entropy, extent=-1.0)),
    ("values", lambda: L.margin_curves(L.tempered_cross_entropy, [])),
    ("num_classes", lambda: L.margin_curves(L.tempered_cross_entropy, [1.0], num_classes=1)),
]:
    err("losses views/bounds", arg, "bad", call)

# ---------------------------------------------------------------------------------------------
# collapse
FEAT = torch.randn(12, 4, generator=G, dtype=F64) + 3 * torch.eye(4, dtype=F64)[:3][XY].repeat(1, 1)[:, :4]
for arg, call in [
    ("features", lambda: collapse.nc_metrics(FEAT[0], XY)),
    ("features", lambda: collapse.nc_metrics("f", XY)),
    ("features", lambda: collapse.nc_metrics(FEAT * NAN, XY)),
    ("features", lambda: collapse.nc_metrics(FEAT.long(), XY)),
    ("features", lambda: collapse.nc_metrics(FEAT - collapse.class_means(FEAT, XY)[XY], XY)),
    ("labels", lambda: collapse.nc_metrics(FEAT, XY[:10])),
    ("labels", lambda: collapse.nc_metrics(FEAT, XY - 1)),
    ("labels", lambda: collapse.nc_metrics(FEAT, XY.double())),
    ("labels", lambda: collapse.nc_metrics(FEAT, XY > 0)),
    ("labels", lambda: collapse.nc_metrics(FEAT, torch.zeros(12, dtype=torch.long))),
    ("num_classes", lambda: collapse.nc_metrics(FEAT, XY, num_classes=2)),
    ("labels", lambda: collapse.nc_metrics(FEAT, XY, num_classes=5)),
    ("global_mean", lambda: collapse.nc_metrics(FEAT, XY, global_mean="median")),
    ("rcond", lambda: collapse.nc_metrics(FEAT, XY, rcond=-1.0)),
    ("batch_size", lambda: collapse.nc_metrics(FEAT, XY, batch_size=0)),
    ("classifier", lambda: collapse.nc_metrics(FEAT, XY, classifier=torch.zeros(3, 5, dtype=F64))),
    ("classifier", lambda: collapse.nc_metrics(FEAT, XY, classifier="w")),
    ("logits", lambda: collapse.nc_metrics(FEAT, XY, logits=torch.zeros(12, 2, dtype=F64))),
    ("logits", lambda: collapse.nc_metrics(FEAT, XY, logits=torch.full((12, 3), NAN, dtype=F64))),
    ("features", lambda: collapse.class_means(FEAT[0], XY)),
    ("labels", lambda: collapse.class_means(FEAT, XY[:3])),
    ("labels", lambda: collapse.class_means(FEAT, XY - 1)),
    ("features", lambda: collapse.vci(FEAT * INF, XY)),
    ("labels", lambda: collapse.vci(FEAT, XY[:5])),
    ("rcond", lambda: collapse.vci(FEAT, XY, rcond=NAN)),
    ("num_classes", lambda: collapse.simplex_etf(1)),
    ("num_classes", lambda: collapse.simplex_etf("3")),
    ("dim", lambda: collapse.simplex_etf(4, dim=2)),
    ("num_classes", lambda: collapse.orthogonal_frame(0)),
    ("target", lambda: collapse.frame_distance(FEAT[:3], "bogus")),
    ("vectors", lambda: collapse.frame_distance(FEAT[0])),
    ("counts", lambda: collapse.fit_ufm([], 3)),
    ("counts", lambda: collapse.fit_ufm([0, 3], 3)),
    ("dim", lambda: collapse.fit_ufm([3, 3], 0)),
    ("loss", lambda: collapse.fit_ufm([3, 3], 3, loss="hinge")),
    ("lambda_W", lambda: collapse.fit_ufm([3, 3], 3, lambda_W=-1.0)),
    ("depth", lambda: collapse.fit_ufm([3, 3], 3, depth=0)),
    ("max_iter", lambda: collapse.fit_ufm([3, 3], 3, max_iter=0)),
    ("lambda_W", lambda: collapse.imbalanced_frame([3, 3], -1.0)),
    ("counts", lambda: collapse.imbalanced_frame([3], 0.1)),
    ("layer", lambda: collapse.feature_extractor(NET, "nope")),
    ("capture", lambda: collapse.feature_extractor(NET, "2", capture="middle")),
    ("model", lambda: collapse.feature_extractor("net", "2")),
    ("minority", lambda: collapse.minority_collapse(FEAT[:3], [7])),
]:
    err("collapse", arg, "bad", call)

# ---------------------------------------------------------------------------------------------
# NTK
for arg, call, kw in [
    ("model", lambda: ntk.empirical("net", X), {}),
    ("x1", lambda: ntk.empirical(NET, X[:, :2]), {"owner": "B7"}),
    ("x1", lambda: ntk.empirical(NET, X * NAN), {}),
    ("x1", lambda: ntk.empirical(NET, "x"), {}),
    ("x2", lambda: ntk.empirical(NET, X, X[:, :2]), {"owner": "B7"}),
    ("output", lambda: ntk.empirical(NET, X, output="all"), {}),
    ("method", lambda: ntk.empirical(NET, X, method="fast"), {}),
    ("mode", lambda: ntk.empirical(NET, X, mode="test"), {}),
    ("mode", lambda: ntk.empirical(DROP, X, mode="train"), {}),
    ("chunk_size", lambda: ntk.empirical(NET, X, chunk_size=0), {}),
    ("model", lambda: ntk.empirical(INFNET, X), {}),
]:
    err("ntk.empirical", arg, "bad", call, **kw)


def _under_inference(fn):
    def call():
        with torch.inference_mode():
            return fn()

    return call


err(
    "ntk.empirical",
    "inference_mode",
    "under inference_mode",
    _under_inference(lambda: ntk.empirical(NET, X)),
    exc=ERR + (RuntimeError,),
)
same(
    "ntk.empirical",
    "model",
    "tuple output",
    lambda: ntk.empirical(TupleOut(NET), X).kernel,
    lambda: ntk.empirical(NET, X).kernel,
    owner="B10",
)
same(
    "ntk.empirical",
    "model",
    "dict output",
    lambda: ntk.empirical(DictOut(NET), X).kernel,
    lambda: ntk.empirical(NET, X).kernel,
    owner="B10",
)
same(
    "ntk.empirical",
    "x1",
    "float64 inputs to a float32 model",
    lambda: ntk.empirical(NET, X.double()).kernel,
    lambda: ntk.empirical(NET, X).kernel,
    owner="B4",
)
for arg, call in [
    ("depth", lambda: ntk.analytic(X, depth=-1)),
    ("activation", lambda: ntk.analytic(X, depth=1, activation="swish9")),
    ("x1", lambda: ntk.analytic(X * NAN, depth=1)),
    ("x1", lambda: ntk.analytic(X[0], depth=1)),
    ("x2", lambda: ntk.analytic(X, X[:, :2], depth=1)),
    ("w_std", lambda: ntk.analytic(X, depth=1, w_std=0.0)),
    ("parametrization", lambda: ntk.analytic(X, depth=1, parametrization="bogus")),
    ("parametrization", lambda: ntk.parametrize((3, 8, 1), "bogus")),
    ("model", lambda: ntk.parametrize((3,))),
    ("model", lambda: ntk.parametrize("3,8,1")),
    ("model[1] (width)", lambda: ntk.parametrize((3, 0, 1))),
    ("w_std", lambda: ntk.parametrize((3, 8, 1), w_std=0.0)),
    ("activation", lambda: ntk.parametrize((3, 8, 1), activation="swish9")),
    ("model", lambda: ntk.parametrize(BNDropoutNet())),
    ("k_train", lambda: ntk.kernel_regression(torch.ones(3, 2, dtype=F64), torch.ones(3, dtype=F64))),
    ("y_train", lambda: ntk.kernel_regression(torch.eye(3, dtype=F64), torch.ones(2, dtype=F64))),
    ("ridge", lambda: ntk.kernel_regression(torch.eye(3, dtype=F64), torch.ones(3, dtype=F64), ridge=-1.0)),
    ("kernel", lambda: ntk.eigh(torch.ones(3, 2, dtype=F64))),
    ("kernel", lambda: ntk.eigh(torch.full((2, 2), NAN, dtype=F64))),
    ("y", lambda: ntk.alignment(torch.eye(3, dtype=F64), torch.ones(2, dtype=F64))),
    ("k2", lambda: ntk.kernel_distance(torch.eye(3, dtype=F64), torch.eye(2, dtype=F64))),
    ("num_features", lambda: ntk.random_features(X, 0)),
    ("activation", lambda: ntk.random_features(X, 4, activation="swish9")),
    ("x", lambda: ntk.random_features(X * NAN, 4)),
    ("ridges", lambda: ntk.ridge_path(X.double(), torch.ones(12, dtype=F64), ridges=[-1.0])),
    ("y_train", lambda: ntk.ridge_path(X.double(), torch.ones(11, dtype=F64), ridges=[1.0])),
    ("times", lambda: ntk.gradient_flow(torch.eye(3, dtype=F64), torch.ones(3, dtype=F64), [-1.0])),
]:
    err("ntk", arg, "bad", call)


class FunctionalRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.act, self.b = nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)

    def forward(self, x):
        return self.b(torch.relu(self.act(self.a(x))))


err(
    "ntk.parametrize", "model", "torch.relu in forward beside Tanh", lambda: ntk.parametrize(FunctionalRelu())
)

# ---------------------------------------------------------------------------------------------
# landscape
DATA = (X, XY)
for fname, fn in [("plane", landscape.plane), ("line", landscape.line)]:
    for arg, call, kw in [
        ("model", lambda fn=fn: fn("net", CE, DATA, steps=3), {}),
        ("model", lambda fn=fn: fn(INFNET, CE, DATA, steps=3), {}),
        ("loss_fn", lambda fn=fn: fn(NET, 3, DATA, steps=3), {}),
        ("data", lambda fn=fn: fn(NET, CE, (X[:, :2], XY), steps=3), {"owner": "B7"}),
        ("data", lambda fn=fn: fn(NET, CE, (X, XY[:5]), steps=3), {}),
        ("data", lambda fn=fn: fn(NET, CE, "data", steps=3), {}),
        ("data", lambda fn=fn: fn(NET, CE, (X[:0], XY[:0]), steps=3), {}),
        ("steps", lambda fn=fn: fn(NET, CE, DATA, steps=0), {}),
        ("steps", lambda fn=fn: fn(NET, CE, DATA, steps=-3), {}),
        ("steps", lambda fn=fn: fn(NET, CE, DATA, steps=2.5), {}),
        ("span", lambda fn=fn: fn(NET, CE, DATA, steps=3, span=0.0), {}),
        ("span", lambda fn=fn: fn(NET, CE, DATA, steps=3, span=NAN), {}),
        ("norm", lambda fn=fn: fn(NET, CE, DATA, steps=3, norm="l7"), {}),
        ("seed", lambda fn=fn: fn(NET, CE, DATA, steps=3, seed=-1), {}),
    ]:
        err(fname, arg, "bad", call, **kw)
    same(
        fname,
        "data",
        "float32 data, float64 model",
        lambda fn=fn: fn(NET64, CE, DATA, steps=3).loss,
        lambda fn=fn: fn(NET64, CE, (X.double(), XY), steps=3).loss,
        owner="B4",
    )
    same(
        fname,
        "model",
        "tuple output",
        lambda fn=fn: fn(TupleOut(NET), CE, DATA, steps=3).loss,
        lambda fn=fn: fn(NET, CE, DATA, steps=3).loss,
        owner="B10",
    )
err("plane", "directions", "wrong structure", lambda: landscape.plane(NET, CE, DATA, directions="d", steps=3))
err(
    "plane",
    "directions",
    "one direction",
    lambda: landscape.plane(NET, CE, DATA, directions=landscape.random_directions(NET, 1), steps=3),
)
for arg, call in [
    ("model_b", lambda: landscape.interpolate(NET, nn.Linear(3, 3), CE, DATA, steps=3)),
    ("model_b", lambda: landscape.interpolate(NET, "b", CE, DATA, steps=3)),
    ("steps", lambda: landscape.interpolate(NET, _net(1), CE, DATA, steps=1)),
    ("bn", lambda: landscape.interpolate(NET, _net(1), CE, DATA, steps=3, bn="average")),
    ("model_a", lambda: landscape.interpolate(INFNET, _net(1), CE, DATA, steps=3)),
    ("n", lambda: landscape.random_directions(NET, 0)),
    ("norm", lambda: landscape.random_directions(NET, 2, norm="l7")),
    ("model", lambda: landscape.random_directions(nn.ReLU(), 2)),
    ("steps", lambda: landscape.grid_axis(1.0, 0)),
    ("span", lambda: landscape.grid_axis(-1.0, 5)),
    ("model_b", lambda: landscape.parameter_distance(NET, nn.Linear(3, 3))),
    ("outcome", lambda: landscape.box_counting_dimension(np.ones(5))),
]:
    err("landscape", arg, "bad", call)
PLANE = landscape.plane(NET, CE, DATA, steps=3)


def _plane_with(loss):
    d = PLANE.as_dict()
    d["loss"] = loss
    return type(PLANE)(**d)


for arg, call in [
    ("loss", lambda: landscape.plot_plane(_plane_with(-np.ones_like(PLANE.loss)), log=True)),
    ("clip", lambda: landscape.plot_plane(PLANE, clip=-1.0)),
    ("clip", lambda: landscape.plot_plane(PLANE, clip=NAN)),
    ("clip", lambda: landscape.plot_plane(PLANE, clip=-1.0, log=True)),
    ("kind", lambda: landscape.plot_plane(PLANE, kind="pie")),
    ("backend", lambda: landscape.plot_plane(PLANE, backend="svg")),
    ("metric", lambda: landscape.plot_plane(PLANE, metric="nope")),
]:
    err("plot_plane", arg, "bad", call)

# ---------------------------------------------------------------------------------------------
# curvature
NPARAM = sum(p.numel() for p in NET64.parameters())
D64 = (X.double(), XY)
for arg, call, kw in [
    ("vector", lambda: curvature.hvp(NET64, CE, D64, torch.ones(NPARAM - 1, dtype=F64)), {}),
    ("vector", lambda: curvature.hvp(NET64, CE, D64, torch.full((NPARAM,), NAN, dtype=F64)), {}),
    ("vector", lambda: curvature.hvp(NET64, CE, D64, "v"), {}),
    ("model", lambda: curvature.hvp(INFNET, CE, (X, XY), torch.ones(NPARAM)), {}),
    ("loss_fn", lambda: curvature.hvp(NET64, "ce", D64, torch.ones(NPARAM, dtype=F64)), {}),
    ("k", lambda: curvature.top_eigenvalues(NET64, CE, D64, k=0), {}),
    ("k", lambda: curvature.top_eigenvalues(NET64, CE, D64, k=NPARAM + 1), {}),
    ("which", lambda: curvature.top_eigenvalues(NET64, CE, D64, which="XX"), {}),
    ("method", lambda: curvature.top_eigenvalues(NET64, CE, D64, method="power9"), {}),
    ("model", lambda: curvature.top_eigenvalues(INFNET, CE, (X, XY)), {}),
    ("data", lambda: curvature.top_eigenvalues(NET64, CE, (X[:, :2].double(), XY)), {"owner": "B7"}),
    ("data", lambda: curvature.top_eigenvalues(NET64, CE, (X.double(), XY[:4])), {}),
    ("mode", lambda: curvature.top_eigenvalues(NET64, CE, D64, mode="test"), {}),
    ("mode", lambda: curvature.top_eigenvalues(DROP, CE, DATA, mode="train"), {}),
    ("dtype", lambda: curvature.top_eigenvalues(NET64, CE, D64, dtype=torch.int32), {}),
    ("method", lambda: curvature.trace(NET64, CE, D64, method="exact9"), {}),
    ("matvecs", lambda: curvature.trace(NET64, CE, D64, matvecs=0), {}),
    ("num_probes", lambda: curvature.spectral_density(NET64, CE, D64, num_probes=0), {}),
    ("steps", lambda: curvature.spectral_density(NET64, CE, D64, steps=0), {}),
    ("max_params", lambda: curvature.exact_hessian(NET64, CE, D64, max_params=5), {}),
    ("params", lambda: curvature.exact_hessian(NET64, CE, D64, params=["nope"]), {}),
    ("steps", lambda: curvature.lanczos(lambda v: v, torch.ones(3, dtype=F64), 0), {}),
    ("v0", lambda: curvature.lanczos(lambda v: v, torch.zeros(3, dtype=F64), 2), {}),
]:
    err("curvature", arg, "bad", call, **kw)
for fname, call in [
    ("hvp", lambda: curvature.hvp(NET64, CE, D64, torch.ones(NPARAM, dtype=F64))),
    ("top_eigenvalues", lambda: curvature.top_eigenvalues(NET64, CE, D64)),
]:
    err(fname, "inference_mode", "under inference_mode", _under_inference(call), exc=ERR + (RuntimeError,))
same(
    "top_eigenvalues",
    "data",
    "float32 data, float64 model",
    lambda: curvature.top_eigenvalues(NET64, CE, DATA).eigenvalues,
    lambda: curvature.top_eigenvalues(NET64, CE, D64).eigenvalues,
)

# ---------------------------------------------------------------------------------------------
# data, models, train, stats
for arg, call in [
    ("n", lambda: data.two_moons(0)),
    ("n", lambda: data.two_moons(-5)),
    ("n", lambda: data.two_moons(2.5)),
    ("noise", lambda: data.two_moons(10, noise=-1.0)),
    ("noise", lambda: data.two_moons(10, noise=NAN)),
    ("seed", lambda: data.two_moons(10, seed=-1)),
    ("dtype", lambda: data.two_moons(10, dtype=torch.int32)),
    ("dtype", lambda: data.two_moons(10, dtype="bogus")),
    ("device", lambda: data.two_moons(10, device=3.5)),
    ("num_classes", lambda: data.gaussian_mixture(5, 0)),
    ("dim", lambda: data.gaussian_mixture(5, 3, 0)),
    ("imbalance", lambda: data.gaussian_mixture(5, 3, imbalance=0.0)),
    ("n_per_class", lambda: data.gaussian_mixture(0, 3)),
    ("num_classes", lambda: data.spirals(10, 0)),
    ("dim", lambda: data.blobs(10, 0)),
    ("n", lambda: data.circle(0)),
    ("p", lambda: data.modular_arithmetic(1)),
    ("op", lambda: data.modular_arithmetic(5, "pow9")),
    ("train_fraction", lambda: data.modular_arithmetic(5, train_fraction=1.5)),
    ("teacher", lambda: data.teacher_student(8, 3, teacher="cubic")),
    ("teacher", lambda: data.teacher_student(8, 5, teacher=_net())),
    ("dim", lambda: data.teacher_student(8, 0)),
    ("outputs", lambda: data.teacher_student(8, 3, outputs=0)),
    ("test_fraction", lambda: data.train_test_split(data.two_moons(20), 0.0)),
    ("test_fraction", lambda: data.train_test_split(data.two_moons(20), 1.5)),
    ("data", lambda: data.train_test_split("data")),
    ("num_classes", lambda: data.imbalanced_counts(10, 0)),
    ("ratio", lambda: data.imbalanced_counts(10, 3, ratio=0.5)),
    ("profile", lambda: data.imbalanced_counts(10, 3, profile="zipf9")),
    ("in_features", lambda: models.MLP(0, (4,), 2)),
    ("hidden[i]", lambda: models.MLP(3, (0,), 2)),
    ("out_features", lambda: models.MLP(3, (4,), -1)),
    ("activation", lambda: models.MLP(3, (4,), 2, activation="swish9")),
    ("init", lambda: models.MLP(3, (4,), 2, init="xavier9")),
    ("gain", lambda: models.MLP(3, (4,), 2, gain=0.0)),
    ("seed", lambda: models.MLP(3, (4,), 2, seed=-1)),
    ("dtype", lambda: models.MLP(3, (4,), 2, dtype="bogus")),
    ("dims", lambda: models.DeepLinear((3,))),
    ("dims[i]", lambda: models.DeepLinear((3, 0, 2))),
    ("num_classes", lambda: models.UFM(10, 4, 1)),
    ("num_samples", lambda: models.UFM(0, 4, 3)),
    ("activation", lambda: models.activation("swish9")),
    ("x", lambda: stats.loglog_slope([1.0, 2.0], [1.0])),
    ("x", lambda: stats.loglog_slope([-1.0, 2.0], [1.0, 2.0])),
    ("v", lambda: stats.cosine_matrix(np.ones(3))),
]:
    err("data/models/stats", arg, "bad", call)
same(
    "teacher_student",
    "teacher",
    "teacher returning a tuple",
    lambda: data.teacher_student(8, 3, teacher=TupleOut(_net())).y,
    lambda: data.teacher_student(8, 3, teacher=_net()).y,
    owner="B10",
)
for arg, call, kw in [
    ("model", lambda: train.fit("net", CE, DATA, steps=1, progress=False), {}),
    ("loss_fn", lambda: train.fit(_net(), 3, DATA, steps=1, progress=False), {}),
    ("steps", lambda: train.fit(_net(), CE, DATA, steps=1.5, progress=False), {}),
    ("steps", lambda: train.fit(_net(), CE, DATA, steps=-1, progress=False), {}),
    ("lr", lambda: train.fit(_net(), CE, DATA, steps=1, lr=-1.0, progress=False), {}),
    ("lr", lambda: train.fit(_net(), CE, DATA, steps=1, lr=NAN, progress=False), {}),
    ("optimizer", lambda: train.fit(_net(), CE, DATA, steps=1, optimizer="adam9", progress=False), {}),
    ("batch_size", lambda: train.fit(_net(), CE, DATA, steps=1, batch_size=0, progress=False), {}),
    ("seed", lambda: train.fit(_net(), CE, DATA, steps=1, seed=-1, progress=False), {}),
    ("data", lambda: train.fit(_net(), CE, (X, XY[:5]), steps=1, progress=False), {}),
    ("data", lambda: train.fit(_net(), CE, (X[:, :2], XY), steps=1, progress=False), {"owner": "B7"}),
    ("schedule", lambda: train.fit(_net(), CE, DATA, steps=1, schedule="zigzag", progress=False), {}),
    ("model", lambda: train.fit(INFNET, CE, DATA, steps=1, progress=False), {}),
    ("x", lambda: train.accuracy(X[:, :2], XY)(NET), {"owner": "B7"}),
    ("y", lambda: train.accuracy(X, XY[:5])(NET), {}),
]:
    err("train", arg, "bad", call, **kw)
same(
    "train.accuracy",
    "model",
    "tuple output",
    lambda: train.accuracy(X, XY)(TupleOut(NET)),
    lambda: train.accuracy(X, XY)(NET),
    owner="B10",
)
same(
    "train.accuracy",
    "y",
    "int32 labels",
    lambda: train.accuracy(X, XY.to(torch.int32))(NET),
    lambda: train.accuracy(X, XY)(NET),
)
same(
    "fit",
    "data",
    "float32 data, float64 model",
    lambda: train.fit(_net(dtype=F64), CE, DATA, steps=2, progress=False).loss,
    lambda: train.fit(_net(dtype=F64), CE, (X.double(), XY), steps=2, progress=False).loss,
    owner="B4",
)


# ---------------------------------------------------------------------------------------------
# more of the families' helpers
MLP_A, MLP_B = models.MLP(3, (5,), 2, seed=0), models.MLP(3, (5,), 2, seed=1)
for arg, call in [
    ("model_b", lambda: landscape.weight_matching(MLP_A, models.MLP(3, (6,), 2, seed=1))),
    ("max_sweeps", lambda: landscape.weight_matching(MLP_A, MLP_B, max_sweeps=0)),
    ("model_b", lambda: landscape.weight_matching(MLP_A, "b")),
    ("permutations", lambda: landscape.permute_mlp(MLP_A, [torch.tensor([0, 0, 1, 2, 3])])),
    ("permutations", lambda: landscape.permute_mlp(MLP_A, "p")),
    ("layer", lambda: landscape.subspace_overlap(MLP_A, MLP_B, layer=7)),
    ("k", lambda: landscape.subspace_overlap(MLP_A, MLP_B, k=0)),
    ("path", lambda: landscape.trajectory(MLP_A, [])),
    ("path", lambda: landscape.trajectory(MLP_A, "p")),
    ("n", lambda: landscape.trajectory(MLP_A, [MLP_A.state_dict(), MLP_B.state_dict()], n=0)),
    ("resolution", lambda: landscape.trainability(resolution=0)),
    ("steps", lambda: landscape.trainability(resolution=2, steps=0)),
    (
        "x_range",
        lambda: landscape.trainability(x_range=(1.0, 1.0), resolution=2, steps=30, tail=5, check_every=5),
    ),
    ("distribution", lambda: curvature.trace(NET64, CE, D64, distribution="uniform9")),
    ("seed", lambda: curvature.trace(NET64, CE, D64, seed=-1)),
    ("distribution", lambda: curvature.spectral_density(NET64, CE, D64, distribution="uniform9")),
    ("data", lambda: curvature.class_mean_gradients(NET64, CE, (X.double(), XY.double()))),
    ("mode", lambda: curvature.class_mean_gradients(NET64, CE, D64, mode="x")),
    ("vectors", lambda: curvature.subspace_energy(torch.ones(3, dtype=F64), torch.eye(3, dtype=F64))),
    ("spanning", lambda: curvature.subspace_energy(torch.eye(3, dtype=F64), torch.eye(4, dtype=F64))),
    ("features", lambda: collapse.class_statistics(FEAT * NAN, XY)),
    ("labels", lambda: collapse.class_statistics(FEAT, XY[:4])),
    ("global_mean", lambda: collapse.class_statistics(FEAT, XY, global_mean="x")),
    ("batch_size", lambda: collapse.class_statistics(FEAT, XY, batch_size=0)),
    ("means", lambda: collapse.ufm_geometry_loss(torch.ones(3, dtype=F64))),
    ("depth", lambda: collapse.ufm_geometry_loss(torch.eye(3, dtype=F64), depth=0)),
    ("loss", lambda: collapse.ufm_geometry_loss(torch.eye(3, dtype=F64), loss="x")),
    ("layer", lambda: collapse.features(NET, DATA, "nope")),
    ("data", lambda: collapse.features(NET, "data", "2")),
    ("times", lambda: ntk.gradient_flow(torch.eye(3, dtype=F64), torch.ones(3, dtype=F64), [NAN])),
    ("y_train", lambda: ntk.gradient_flow(torch.eye(3, dtype=F64), torch.ones(2, dtype=F64), [1.0])),
    ("lr", lambda: ntk.gradient_flow(torch.eye(3, dtype=F64), torch.ones(3, dtype=F64), [1.0], lr=0.0)),
    ("loss", lambda: ntk.gradient_flow(torch.eye(3, dtype=F64), torch.ones(3, dtype=F64), [1.0], loss="x")),
    ("k", lambda: ntk.relative_change(torch.eye(3, dtype=F64), torch.eye(2, dtype=F64))),
    ("k_ref", lambda: ntk.relative_change(torch.zeros(3, 3, dtype=F64), torch.eye(3, dtype=F64))),
    ("k1", lambda: ntk.kernel_distance(torch.full((2, 2), NAN, dtype=F64), torch.eye(2, dtype=F64))),
    ("v", lambda: stats.gram_matrix("v")),
    ("y", lambda: stats.loglog_slope([1.0, 2.0, 3.0], [1.0, NAN, 2.0])),
]:
    err("helpers", arg, "bad", call)


# ---------------------------------------------------------------------------------------------
# bad inputs on a mid-training model (train mode, BatchNorm statistics, .grad populated): the
# clear error must come without touching the model or the global RNG
BND = BNDropoutNet(4, 8, 3, seed=0)  # train mode, warmed-up BatchNorm, .grad set
XB = torch.randn(10, 4, generator=G)
YB = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
BND_B = BNDropoutNet(4, 8, 3, seed=1)
for fname, call, arg in [
    ("plane", lambda: landscape.plane(BND, CE, (XB, YB), steps=0), "steps"),
    ("plane", lambda: landscape.plane(BND, CE, (XB, YB[:3]), steps=3), "data"),
    ("line", lambda: landscape.line(BND, CE, (XB, YB), steps=3, norm="l7"), "norm"),
    ("top_eigenvalues", lambda: curvature.top_eigenvalues(BND, CE, (XB, YB), k=0), "k"),
    ("top_eigenvalues", lambda: curvature.top_eigenvalues(BND, CE, (XB, YB), mode="train"), "mode"),
    ("hvp", lambda: curvature.hvp(BND, CE, (XB, YB), torch.ones(3)), "vector"),
    ("trace", lambda: curvature.trace(BND, CE, (XB, YB), matvecs=0), "matvecs"),
    ("spectral_density", lambda: curvature.spectral_density(BND, CE, (XB, YB), num_probes=0), "num_probes"),
    ("ntk.empirical", lambda: ntk.empirical(BND, XB, mode="train"), "mode"),
    ("ntk.empirical", lambda: ntk.empirical(BND, XB, output="all"), "output"),
    ("train.accuracy", lambda: train.accuracy(XB, YB[:4])(BND), "y"),
    ("teacher_student", lambda: data.teacher_student(10, 3, teacher=BND), "teacher"),
    ("collapse.features", lambda: collapse.features(BND, (XB, YB), "nope"), "layer"),
    ("interpolate", lambda: landscape.interpolate(BND, BND_B, CE, (XB, YB), steps=1), "steps"),
    ("ntk.parametrize", lambda: ntk.parametrize(BND), "model"),
]:
    unchanged(fname, arg, "bad input on a train-mode BN/Dropout model", call, BND)
for fname, call in [
    ("plane", lambda: landscape.plane(BND, CE, (XB, YB), steps=3)),
    ("top_eigenvalues", lambda: curvature.top_eigenvalues(BND, CE, (XB, YB))),
    ("ntk.empirical", lambda: ntk.empirical(BND, XB)),
    ("train.accuracy", lambda: train.accuracy(XB, YB)(BND)),
    ("teacher_student", lambda: data.teacher_student(10, 4, teacher=BND)),
    ("collapse.features", lambda: collapse.features(BND, (XB, YB), "head")),
]:
    unchanged(fname, "model", "valid call on a train-mode BN/Dropout model", call, BND, must_raise=False)


# ---------------------------------------------------------------------------------------------
def _results():
    failures = []
    for c in CASES:
        why = run_case(c)
        if why is not None:
            failures.append((c, why))
    return failures


def test_bad_input_probe_clear_error_rate():
    assert len(CASES) >= 300, len(CASES)
    with torch.random.fork_rng(devices=[]):
        failures = _results()
    rate = 1 - len(failures) / len(CASES)
    lines = [
        f"{c.func} [{c.arg}] {c.label}{' (' + c.owner + ')' if c.owner else ''}: {why}" for c, why in failures
    ]
    print(f"\nbad-input probe: {len(CASES) - len(failures)}/{len(CASES)} clear ({100 * rate:.1f}%)")
    print("\n".join(lines))
    assert rate >= 0.97, f"clear-error rate {100 * rate:.1f}% < 97%:\n" + "\n".join(lines)


@pytest.mark.parametrize("label", ["no mutation"])
def test_probe_leaves_the_fixture_models_unchanged(label):
    # the probe runs hundreds of calls on NET/NET64/INFNET; none may change them
    ref = _net()
    assert all(torch.equal(a, b) for a, b in zip(NET.parameters(), ref.parameters()))
    assert NET.training and all(p.grad is None for p in NET.parameters())
