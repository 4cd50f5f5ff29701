r"""Optimisers the families and notebooks need beyond ``torch.optim``: Lion and ADOPT.

They are ordinary :class:`torch.optim.Optimizer` subclasses: hand one to :func:`lossviz.train.fit`
as ``optimizer=lambda params: Lion(params, lr=..., weight_decay=...)``; lossviz has one training
loop and these classes add none. Each takes its hyper-parameters as named arguments with
documented defaults, checks them (``ValueError``/``TypeError`` naming the argument) and keeps its
state on the parameters' device and dtype.

* :class:`Lion`: Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023,
  arXiv:2302.06675 (notebook L11 reads it as a box-constrained optimiser).
* :class:`ADOPT`, :class:`ClippedADOPT`: Taniguchi et al., *ADOPT: Modified Adam Can Converge
  with Any beta2 with the Optimal Rate*, NeurIPS 2024, arXiv:2411.02853 (notebook L12).
"""

from __future__ import annotations

import torch

from ._validate import check_betas, check_float

__all__ = ["Lion", "ADOPT", "ClippedADOPT"]


class _Optimizer(torch.optim.Optimizer):
    """``step(closure=None)`` as torch's optimisers have it; subclasses update one group at a time."""

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102  (documented on the subclasses)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update(group)
        return loss

    def _update(self, group: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class ADOPT(_Optimizer):
    r"""ADOPT (Taniguchi et al., NeurIPS 2024, arXiv:2411.02853), Algorithm 1 by default.

    Per parameter, with gradient :math:`g_t` and state ``"exp_avg"`` (:math:`m`, zeros),
    ``"exp_avg_sq"`` (:math:`v`) and ``"step"``:

    * the first call only sets :math:`v_0 = g_0^2` (the parameter does not move);
    * every later call, the :math:`t`-th update (:math:`t = 1, 2, \dots`),

      .. math::

          u = \frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}\ \big(\text{clipped to } \pm t^{c}
          \text{ when } c = \texttt{clip\_exponent} \text{ is set}\big),\quad
          m \leftarrow \beta_1 m + (1 - \beta_1) u,\quad
          \theta \leftarrow \theta - \eta\, m,\quad
          v \leftarrow \beta_2 v + (1 - \beta_2) g_t^2 .

    No bias correction (the paper has none: :math:`v_0 = g_0^2` is unbiased and :math:`m` starts at
    0). ``clip_exponent=None`` is the paper's Algorithm 1; ``clip_exponent=0.25`` is the official
    implementation's default since its 2024-11-22 update (:class:`ClippedADOPT`), which the updated
    paper shows keeps the convergence rate.

    Parameters
    ----------
    lr : :math:`\eta \ge 0`
    betas : :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``; any :math:`\beta_2` is allowed (the point)
    eps : :math:`\epsilon > 0`, the floor of :math:`\sqrt{v}` (official default ``1e-6``)
    clip_exponent : ``None`` (no clipping, Algorithm 1) or :math:`c \ge 0` (clip to :math:`\pm t^c`)

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    >>> adopt = ADOPT([w], lr=0.1, betas=(0.5, 0.5))
    >>> w.grad = torch.tensor([2.0, -1.0], dtype=torch.float64)
    >>> adopt.step()   # one call, not a loop (training goes through train.fit): sets v = g^2
    >>> w.tolist(), adopt.state[w]["exp_avg_sq"].tolist()
    ([0.0, 0.0], [4.0, 1.0])
    >>> w.grad = torch.tensor([4.0, 1.0], dtype=torch.float64)
    >>> adopt.step()   # u = g / sqrt(v_prev) = (2, 1), m = 0.5 u, w -= 0.1 m
    >>> [round(x, 4) for x in w.tolist()]
    [-0.1, -0.05]
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.9999),
        eps: float = 1e-6,
        clip_exponent: float | None = None,
    ):
        if clip_exponent is not None:
            clip_exponent = check_float(clip_exponent, "clip_exponent", minimum=0.0)
        defaults = {
            "lr": check_float(lr, "lr", minimum=0.0),
            "betas": check_betas(betas),
            "eps": check_float(eps, "eps", positive=True),
            "clip_exponent": clip_exponent,
        }
        super().__init__(params, defaults)

    def _update(self, group: dict) -> None:
        lr, eps, c = group["lr"], group["eps"], group["clip_exponent"]
        b1, b2 = group["betas"]
        by_step: dict[int, list] = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            st = self.state[p]
            if "step" not in st:
                st["step"] = 0
                st["exp_avg"] = torch.zeros_like(p)
                st["exp_avg_sq"] = torch.zeros_like(p)
            if st["step"] == 0:  # the first call only sets v_0 = g_0^2
                st["exp_avg_sq"].addcmul_(p.grad, p.grad)
                st["step"] = 1
                continue
            by_step.setdefault(st["step"], []).append(p)
        for t, ps in by_step.items():  # one batch of foreach kernels per step count (the clip bound)
            gs = [p.grad for p in ps]
            ms = [self.state[p]["exp_avg"] for p in ps]
            vs = [self.state[p]["exp_avg_sq"] for p in ps]
            us = torch._foreach_div(gs, torch._foreach_clamp_min(torch._foreach_sqrt(vs), eps))
            if c is not None:
                bound = float(t) ** c
                torch._foreach_clamp_min_(us, -bound)
                torch._foreach_clamp_max_(us, bound)
            torch._foreach_lerp_(ms, us, 1.0 - b1)
            torch._foreach_add_(ps, ms, alpha=-lr)
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, gs, gs, value=1.0 - b2)
            for p in ps:
                self.state[p]["step"] = t + 1


class ClippedADOPT(ADOPT):
    r"""ADOPT with the official clipping: the normalised gradient is clipped to :math:`\pm t^{1/4}`.

    The same as :class:`ADOPT` with ``clip_exponent=0.25`` (the official code's
    ``clip_lambda = lambda step: step ** 0.25``). The clipping bounds the step of a coordinate whose
    :math:`\sqrt{v}` is tiny (for instance a ReLU unit that was dead on the first batch and has
    :math:`v_0 = 0`: Algorithm 1 then steps by :math:`g/\epsilon`).

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    >>> adopt = ClippedADOPT([w], lr=1.0, betas=(0.0, 0.5))
    >>> w.grad = torch.zeros(1, dtype=torch.float64); adopt.step()   # v_0 = 0
    >>> w.grad = torch.ones(1, dtype=torch.float64); adopt.step()    # g / eps = 1e6, clipped to 1
    >>> w.tolist()
    [-1.0]
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.9999), eps: float = 1e-6, clip_exponent=0.25):
        super().__init__(params, lr=lr, betas=betas, eps=eps, clip_exponent=clip_exponent)


class Lion(_Optimizer):
    r"""Lion (EvoLved Sign Momentum) with decoupled weight decay.

    Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023, arXiv:2302.06675
    (Algorithm 2); analysed as a constrained optimiser by Chen, Liu, Liang & Liu, ICLR 2024,
    arXiv:2310.05898. Per parameter, with :math:`g` its gradient and :math:`m` the state
    ``"exp_avg"`` (zeros unless set before the first step):

    .. math::

        c = \beta_1 m + (1 - \beta_1) g,\quad
        x \leftarrow (1 - \eta\lambda)\,x - \eta\,\operatorname{sign}(c),\quad
        m \leftarrow \beta_2 m + (1 - \beta_2) g .

    ``sign(0) = 0``. The decay is *decoupled* (it does not enter :math:`m`). A start momentum
    :math:`m_0` is given by ``optimizer.state[p]["exp_avg"] = m0`` before the first step.

    Parameters
    ----------
    lr : :math:`\eta \ge 0`
    betas : :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``
    weight_decay : :math:`\lambda \ge 0`; the box radius is :math:`1/\lambda`

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([3.0, -0.5], dtype=torch.float64))
    >>> lion = Lion([w], lr=0.1, weight_decay=1.0)
    >>> w.grad = torch.tensor([-1.0, 2.0], dtype=torch.float64)
    >>> lion.step()  # one step, not a loop: training goes through train.fit
    >>> [round(v, 4) for v in w.tolist()]   # (1 - 0.1) w - 0.1 sign(0.1 g)
    [2.8, -0.55]
    """

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0):
        defaults = {
            "lr": check_float(lr, "lr", minimum=0.0),
            "betas": check_betas(betas),
            "weight_decay": check_float(weight_decay, "weight_decay", minimum=0.0),
        }
        super().__init__(params, defaults)

    def _update(self, group: dict) -> None:
        lr, wd = group["lr"], group["weight_decay"]
        b1, b2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            st = self.state[p]
            if "exp_avg" not in st:
                st["exp_avg"] = torch.zeros_like(p)
            m = st["exp_avg"]
            c = m.mul(b1).add_(p.grad, alpha=1.0 - b1)
            p.mul_(1.0 - lr * wd).add_(torch.sign(c), alpha=-lr)
            m.mul_(b2).add_(p.grad, alpha=1.0 - b2)
