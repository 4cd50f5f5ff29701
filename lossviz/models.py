"""Small models the notebooks train: MLPs, deep linear networks, unconstrained features, a tiny
decoder-only Transformer.

All take ``dtype``/``device`` and an optional ``seed`` (initialisation from a private generator,
so building a model does not consume global randomness).

>>> import torch
>>> from lossviz.models import MLP
>>> net = MLP(2, (16, 16), 3, activation="tanh", seed=0)
>>> net(torch.zeros(5, 2)).shape, net.features(torch.zeros(5, 2)).shape
(torch.Size([5, 3]), torch.Size([5, 16]))
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
from torch import nn

from ._deprecate import moved
from ._validate import check_choice, check_dtype, check_float, check_int, check_tensor

__all__ = ["MLP", "DeepLinear", "UFM", "TinyTransformer", "ACTIVATIONS", "activation", "Erf"]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "erf": None,  # filled below: torch has no Erf module
    "linear": nn.Identity,
}


class Erf(nn.Module):
    """``torch.erf`` as a module (the activation with a closed-form infinite-width kernel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(x)


ACTIVATIONS["erf"] = Erf


def _host(gen: torch.Generator | None) -> torch.device:
    """Where seeded draws happen: the generator's device (the CPU for the default stream)."""
    return gen.device if gen is not None else torch.device("cpu")


def activation(name: str) -> nn.Module:
    """An activation module by name: the package's one table, :data:`ACTIVATIONS`.

    ``"identity"`` and ``"linear"`` are the same map; ``"erf"`` is :class:`Erf`.
    """
    check_choice(name, "activation", tuple(ACTIVATIONS))
    return ACTIVATIONS[name]()


def _init_linear(layer: nn.Linear, gen: torch.Generator | None, init: str, gain: float) -> None:
    """Initialise a Linear layer: ``"default"`` (PyTorch's), ``"normal"`` N(0, gain^2/fan_in)."""
    if init == "default":
        if gen is None:
            return  # torch's own default init already ran
        bound = 1 / math.sqrt(layer.in_features)
        with torch.no_grad():
            w = torch.rand(layer.weight.shape, generator=gen, dtype=torch.float64, device=_host(gen)) * 2 - 1
            layer.weight.copy_(w * bound)
            if layer.bias is not None:
                b = (
                    torch.rand(layer.bias.shape, generator=gen, dtype=torch.float64, device=_host(gen)) * 2
                    - 1
                )
                layer.bias.copy_(b * bound)
        return
    std = gain / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.copy_(
            torch.randn(layer.weight.shape, generator=gen, dtype=torch.float64, device=_host(gen)) * std
        )
        if layer.bias is not None:
            layer.bias.zero_()


def _gen(seed):
    return None if seed is None else torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))


def _quiet_rng(seed, device=None):
    """With a ``seed``, a context in which torch's default init (``nn.Linear.reset_parameters``)
    draws from a forked global RNG, so a seeded constructor leaves the caller's RNG untouched."""
    if seed is None:
        return contextlib.nullcontext()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    devices = [dev.index or 0] if dev.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


class MLP(nn.Module):
    """Fully connected network ``in -> hidden[0] -> ... -> hidden[-1] -> out``.

    Parameters
    ----------
    in_features, out_features : int
    hidden : sequence of int
        Widths of the hidden layers (may be empty: a linear model).
    activation : str
        One of :data:`ACTIVATIONS`, applied after every hidden layer.
    bias : bool
        Bias in every layer (``head_bias`` overrides it for the last layer).
    init : ``"default"`` | ``"normal"``
        PyTorch's uniform init, or ``N(0, gain^2 / fan_in)`` weights and zero biases.

    Attributes
    ----------
    layers : ``nn.ModuleList`` of the hidden ``nn.Linear`` layers;
    head : the last ``nn.Linear``; ``features(x)`` returns its input (penultimate features).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (64, 64),
        out_features: int = 1,
        *,
        activation: str = "relu",
        bias: bool = True,
        head_bias: bool | None = None,
        init: str = "default",
        gain: float = 1.0,
        dtype: torch.dtype | None = None,
        device=None,
        seed: int | None = None,
    ):
        super().__init__()
        in_features = check_int(in_features, "in_features", minimum=1)
        out_features = check_int(out_features, "out_features", minimum=1)
        if isinstance(hidden, int):
            hidden = (hidden,)
        hidden = tuple(check_int(h, "hidden[i]", minimum=1) for h in hidden)
        check_choice(activation, "activation", tuple(ACTIVATIONS))
        check_choice(init, "init", ("default", "normal"))
        gain = check_float(gain, "gain", positive=True)
        dtype = check_dtype(dtype)
        gen = _gen(seed)
        head_bias = bias if head_bias is None else head_bias
        dims = (in_features, *hidden)
        with _quiet_rng(seed, device):
            self.layers = nn.ModuleList(
                nn.Linear(a, b, bias=bias, dtype=dtype, device=device) for a, b in zip(dims[:-1], dims[1:])
            )
            self.head = nn.Linear(dims[-1], out_features, bias=head_bias, dtype=dtype, device=device)
        self.act = ACTIVATIONS[activation]()
        self.activation_name = activation
        for layer in [*self.layers, self.head]:
            _init_linear(layer, gen, init, gain)

    @property
    def widths(self) -> tuple[int, ...]:
        return (
            (self.layers[0].in_features if len(self.layers) else self.head.in_features,)
            + tuple(layer.out_features for layer in self.layers)
            + (self.head.out_features,)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (the input of :attr:`head`)."""
        for layer in self.layers:
            x = self.act(layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class DeepLinear(nn.Module):
    """Deep linear network ``x -> W_L ... W_2 W_1 x`` with ``dims = (d_0, d_1, ..., d_L)``.

    ``init_scale`` multiplies ``N(0, 1/fan_in)`` weights (small scales start near the saddle at 0,
    as in the saddle and implicit-bias literature). ``product()`` returns the end-to-end matrix.
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        bias: bool = False,
        init_scale: float = 1.0,
        dtype: torch.dtype | None = None,
        device=None,
        seed: int | None = None,
    ):
        super().__init__()
        dims = tuple(check_int(d, "dims[i]", minimum=1) for d in dims)
        if len(dims) < 2:
            raise ValueError(f"`dims` needs at least an input and an output width, got {dims}")
        init_scale = check_float(init_scale, "init_scale", minimum=0.0)
        gen = _gen(seed)
        with _quiet_rng(seed, device):
            self.layers = nn.ModuleList(
                nn.Linear(a, b, bias=bias, dtype=check_dtype(dtype), device=device)
                for a, b in zip(dims[:-1], dims[1:])
            )
        for layer in self.layers:
            _init_linear(layer, gen, "normal", init_scale)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = layer(x)
        return x

    @property
    def head(self) -> nn.Linear:
        return self.layers[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[-1](self.features(x))

    def product(self) -> torch.Tensor:
        """The end-to-end matrix ``W_L ... W_1`` (shape ``(d_L, d_0)``), detached."""
        with torch.no_grad():
            m = self.layers[0].weight
            for layer in self.layers[1:]:
                m = layer.weight @ m
            return m.detach().clone()


class UFM(nn.Module):
    """Unconstrained features model: free features ``H`` (one row per sample) + a linear head.

    ``forward(idx)`` returns the logits of samples ``idx`` (a ``LongTensor`` of sample indices,
    or ``None`` for all), i.e. ``head(H[idx])``; with ``depth > 1`` the head is a deep linear
    stack ``W_depth ... W_1`` (the "deep linear UFM" of Dang et al. 2023). ``features()`` gives
    ``H`` and ``layer_features()`` the features after each head layer.
    Weight decay on ``H`` and on the head is the user's choice (see :meth:`penalty`).
    """

    def __init__(
        self,
        num_samples: int,
        feature_dim: int,
        num_classes: int,
        *,
        depth: int = 1,
        bias: bool = False,
        init_scale: float = 1.0,
        dtype: torch.dtype | None = None,
        device=None,
        seed: int | None = None,
    ):
        super().__init__()
        num_samples = check_int(num_samples, "num_samples", minimum=1)
        feature_dim = check_int(feature_dim, "feature_dim", minimum=1)
        num_classes = check_int(num_classes, "num_classes", minimum=2)
        depth = check_int(depth, "depth", minimum=1)
        init_scale = check_float(init_scale, "init_scale", minimum=0.0)
        gen = _gen(seed)
        dtype = check_dtype(dtype) or torch.get_default_dtype()
        self.H = nn.Parameter(
            (
                init_scale
                * torch.randn(num_samples, feature_dim, generator=gen, dtype=torch.float64, device=_host(gen))
            ).to(dtype=dtype, device=device)
        )
        dims = [feature_dim] * depth + [num_classes]
        with _quiet_rng(seed, device):
            self.layers = nn.ModuleList(
                nn.Linear(a, b, bias=(bias and i == depth - 1), dtype=dtype, device=device)
                for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))
            )
        for layer in self.layers:
            _init_linear(layer, gen, "normal", init_scale)

    @property
    def head(self) -> nn.Linear:
        return self.layers[-1]

    def features(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        return self.H if idx is None else self.H[check_tensor(idx, "idx", ndim=1, floating=False)]

    def layer_features(self, idx: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``[H, W_1 H, W_2 W_1 H, ...]`` up to the input of the last layer."""
        h = self.features(idx)
        out = [h]
        for layer in self.layers[:-1]:
            h = layer(h)
            out.append(h)
        return out

    def forward(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        return self.layers[-1](self.layer_features(idx)[-1])

    def penalty(self, weight_decay_h: float, weight_decay_w: float) -> torch.Tensor:
        """``(lambda_H / 2) sum ||h_i||^2 / N + (lambda_W / 2) sum_l ||W_l||_F^2`` (mean over samples for H)."""
        n = self.H.shape[0]
        reg = 0.5 * weight_decay_h * self.H.square().sum() / n
        for layer in self.layers:
            reg = reg + 0.5 * weight_decay_w * layer.weight.square().sum()
        return reg


class _Block(nn.Module):
    """One pre-LN decoder block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``; no biases."""

    def __init__(
        self, d: int, heads: int, hidden: int, act: str, qk_layernorm: bool, eps: float, dtype, device
    ):
        super().__init__()
        self.heads, self.d_head = heads, d // heads
        kw = {"dtype": dtype, "device": device}
        self.ln1 = nn.LayerNorm(d, eps=eps, bias=False, **kw)
        self.qkv = nn.Linear(d, 3 * d, bias=False, **kw)
        self.proj = nn.Linear(d, d, bias=False, **kw)
        if qk_layernorm:
            self.q_ln = nn.LayerNorm(self.d_head, eps=eps, bias=False, **kw)
            self.k_ln = nn.LayerNorm(self.d_head, eps=eps, bias=False, **kw)
        else:
            self.q_ln = self.k_ln = None
        self.ln2 = nn.LayerNorm(d, eps=eps, bias=False, **kw)
        self.fc1 = nn.Linear(d, hidden, bias=False, **kw)
        self.act = ACTIVATIONS[act]()
        self.fc2 = nn.Linear(hidden, d, bias=False, **kw)

    def attention_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, v)``: raw logits ``q.k / sqrt(d_head)`` ``(B, H, T, T)`` (no mask) and values."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, self.d_head).permute(2, 0, 3, 1, 4)
        if self.q_ln is not None:
            q, k = self.q_ln(q), self.k_ln(k)
        return q @ k.transpose(-1, -2) / math.sqrt(self.d_head), v

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, d = x.shape
        logits, v = self.attention_logits(x)
        amax = logits.detach().masked_fill(~mask, 0.0).abs().amax()
        att = logits.masked_fill(~mask, -math.inf).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        x = x + self.fc2(self.act(self.fc1(self.ln2(x))))
        return x, amax


class TinyTransformer(nn.Module):
    r"""A small decoder-only (causal, GPT-style) Transformer language model.

    Pre-LN blocks ``x <- x + Attn(LN(x))``, ``x <- x + MLP(LN(x))`` (MLP ``d -> mlp_ratio d -> d``
    with ``activation``), learned absolute positions added to the token embedding, a final
    LayerNorm and an untied linear head. **No biases** anywhere (linear layers and LayerNorms).
    The attention of head :math:`h` at query position :math:`i` over keys :math:`j \le i` is
    :math:`\mathrm{softmax}_j(q_i \cdot k_j / \sqrt{d_h})` with :math:`d_h = d / \text{heads}`.

    ``qk_layernorm=True`` applies a LayerNorm over :math:`d_h` (gain only, shared by the heads of
    a layer) to every query and key before the dot product (Dehghani et al. 2023; Wortsman et al.,
    *Small-scale proxies for large-scale Transformer training instabilities*, ICLR 2024,
    arXiv:2309.14322). Then :math:`\|\hat q\| = \|\hat k\| \le \sqrt{d_h}` before the gains, so
    :math:`|q \cdot k|/\sqrt{d_h} \le \sqrt{d_h}\,\max|g_q|\,\max|g_k|`: the logits stay bounded
    unless the gains themselves grow.

    Initialisation (from the private generator of ``seed``; without a seed from torch's global
    RNG): every linear weight :math:`N(0, 1/\text{fan\_in})`, token and position embeddings
    :math:`N(0, \text{embed\_std}^2)`, LayerNorm gains 1.

    ``forward(idx)`` takes integer tokens ``(B, T)`` with ``T <= max_len`` and returns logits
    ``(B, T, vocab_size)`` (position ``t`` sees tokens ``0..t`` only). Every forward stores
    ``last_attention_max``: the maximum of :math:`|q\cdot k|/\sqrt{d_h}` over layers, heads, batch
    and causal pairs ``j <= i``, a detached 0-d tensor (an attribute, not a buffer: it does not
    enter ``state_dict``). :meth:`attention_logits` returns all of them.

    Examples
    --------
    >>> import torch
    >>> from lossviz.models import TinyTransformer
    >>> net = TinyTransformer(32, 16, d_model=32, depth=2, heads=2, qk_layernorm=True, seed=0)
    >>> idx = torch.randint(0, 32, (4, 15), generator=torch.Generator().manual_seed(0))
    >>> net(idx).shape, net.attention_logits(idx).shape
    (torch.Size([4, 15, 32]), torch.Size([2, 4, 2, 15, 15]))
    >>> bool(net.last_attention_max <= 16 ** 0.5)   # qk-LN with unit gains: |logit| <= sqrt(d_h)
    True
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        *,
        d_model: int = 32,
        depth: int = 2,
        heads: int = 2,
        mlp_ratio: int = 4,
        activation: str = "gelu",
        qk_layernorm: bool = False,
        embed_std: float = 1.0,
        eps: float = 1e-5,
        dtype: torch.dtype | None = None,
        device=None,
        seed: int | None = None,
    ):
        super().__init__()
        self.vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
        self.max_len = check_int(max_len, "max_len", minimum=1)
        d = check_int(d_model, "d_model", minimum=1)
        depth = check_int(depth, "depth", minimum=1)
        heads = check_int(heads, "heads", minimum=1)
        if d % heads:
            raise ValueError(f"`d_model` ({d}) must be divisible by `heads` ({heads})")
        mlp_ratio = check_int(mlp_ratio, "mlp_ratio", minimum=1)
        check_choice(activation, "activation", tuple(ACTIVATIONS))
        if not isinstance(qk_layernorm, bool):
            raise TypeError(f"`qk_layernorm` must be a bool, got {type(qk_layernorm).__name__}")
        embed_std = check_float(embed_std, "embed_std", minimum=0.0)
        eps = check_float(eps, "eps", positive=True)
        dtype = check_dtype(dtype) or torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise TypeError(f"`dtype` must be a floating dtype, got {dtype}")
        self.d_model, self.depth, self.heads, self.qk_layernorm = d, depth, heads, qk_layernorm
        gen = _gen(seed)
        kw = {"dtype": dtype, "device": device}
        with _quiet_rng(seed, device):
            self.tok = nn.Embedding(self.vocab_size, d, **kw)
            self.pos = nn.Parameter(torch.zeros(self.max_len, d, **kw))
            self.blocks = nn.ModuleList(
                _Block(d, heads, mlp_ratio * d, activation, qk_layernorm, eps, dtype, device)
                for _ in range(depth)
            )
            self.ln_f = nn.LayerNorm(d, eps=eps, bias=False, **kw)
            self.head = nn.Linear(d, self.vocab_size, bias=False, **kw)
            with torch.no_grad():
                for emb in (self.tok.weight, self.pos):
                    draw = torch.randn(emb.shape, generator=gen, dtype=torch.float64, device=_host(gen))
                    emb.copy_(draw * embed_std)
                for m in self.modules():
                    if isinstance(m, nn.Linear):
                        _init_linear(m, gen, "normal", 1.0)
        self.last_attention_max: torch.Tensor | None = None

    def _check_idx(self, idx) -> torch.Tensor:
        idx = check_tensor(idx, "idx", ndim=2, floating=False)
        if idx.dtype == torch.bool or idx.is_complex():
            raise TypeError(f"`idx` must hold integer token ids, got dtype {idx.dtype}")
        if idx.shape[1] > self.max_len:
            raise ValueError(f"`idx` has {idx.shape[1]} positions, more than `max_len` = {self.max_len}")
        return idx

    def _embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.tok(idx) + self.pos[: idx.shape[1]]

    @staticmethod
    def _mask(t: int, device) -> torch.Tensor:
        return torch.ones(t, t, dtype=torch.bool, device=device).tril()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        idx = self._check_idx(idx)
        x = self._embed(idx)
        mask = self._mask(idx.shape[1], x.device)
        amax = []
        for block in self.blocks:
            x, a = block(x, mask)
            amax.append(a)
        self.last_attention_max = torch.stack(amax).amax()
        return self.head(self.ln_f(x))

    def attention_logits(self, idx: torch.Tensor) -> torch.Tensor:
        r"""All attention logits :math:`q_i \cdot k_j / \sqrt{d_h}`, shape ``(depth, B, heads, T, T)``.

        Entries with ``j > i`` (masked by causality) are ``-inf``, as the softmax sees them. Runs
        without gradients and sets nothing on the model (not even ``last_attention_max``).
        """
        idx = self._check_idx(idx)
        out = []
        with torch.no_grad():
            x = self._embed(idx)
            mask = self._mask(idx.shape[1], x.device)
            for block in self.blocks:
                logits, _ = block.attention_logits(x)
                out.append(logits.masked_fill(~mask, -math.inf))
                x, _ = block(x, mask)
        return torch.stack(out)


__getattr__ = moved(__name__, {"PairEmbeddingMLP": "lossviz.papers.k05_softmax_collapse:PairEmbeddingMLP"})
