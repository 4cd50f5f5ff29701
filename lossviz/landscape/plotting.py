"""Drawing landscape results: plotly (default) or matplotlib; figures are returned, never shown.

Axis convention: ``alpha`` (first direction) is horizontal, ``beta`` vertical. Results store
``loss[i, j]`` at ``(alphas[i], betas[j])``; plotly and matplotlib want rows = y, so the arrays
are transposed here and only here. Diverged (non-finite) cells are never drawn as NaN colours:
they are painted with the top colour and marked with an explicit "diverged" overlay.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_choice

__all__ = ["plot_plane", "plot_line", "plot_interpolation", "plot_trainability", "display_values"]


def display_values(
    z: np.ndarray, *, log: bool = False, clip: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Finite values for drawing and the mask of cells that were not finite.

    Non-finite cells (and, with ``clip``, cells above ``clip``) take the largest drawn value;
    ``log=True`` draws ``log10`` (values are floored at the smallest positive finite value).
    """
    z = np.asarray(z, dtype=float)
    bad = ~np.isfinite(z)
    good = z[~bad]
    if good.size == 0:
        return np.zeros_like(z), bad
    top = float(good.max()) if clip is None else min(float(good.max()), float(clip))
    out = np.where(bad, top, np.minimum(z, top))
    if log:
        pos = out[out > 0]
        floor = float(pos.min()) if pos.size else 1e-300
        out = np.log10(np.maximum(out, floor))
    return out, bad


def _traj_xy(trajectory):
    if trajectory is None:
        return None
    c = getattr(trajectory, "coords", trajectory)
    c = np.asarray(c, dtype=float)
    if c.ndim != 2 or c.shape[1] < 2:
        raise ValueError(f"`trajectory` must be a Trajectory or an array of shape (T, 2), got {c.shape}")
    return c[:, 0], c[:, 1]


def plot_plane(
    result,
    kind: str = "contour",
    *,
    backend: str = "plotly",
    metric: str | None = None,
    log: bool = False,
    clip: float | None = None,
    levels: int = 30,
    trajectory=None,
    title: str | None = None,
    ax=None,
):
    """Draw a :class:`~lossviz.landscape.Plane` as a contour, heatmap or 3-D surface.

    Parameters
    ----------
    kind : ``"contour"`` | ``"heatmap"`` | ``"surface"`` (surface: plotly only)
    backend : ``"plotly"`` | ``"matplotlib"``
    metric : draw ``result.metrics[metric]`` instead of the loss
    log : draw ``log10`` of the values; clip : cap values above this (e.g. ``5 * origin_loss``)
    trajectory : :class:`~lossviz.landscape.Trajectory` or (T, 2) coordinates to overlay
    ax : matplotlib axes (matplotlib backend only)
    """
    check_choice(kind, "kind", ("contour", "heatmap", "surface"))
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    if metric is None:
        z, label = result.loss, "log10 loss" if log else "loss"
    else:
        if metric not in result.metrics:
            raise ValueError(f"`metric` must be one of {sorted(result.metrics)}, got {metric!r}")
        z, label = result.metrics[metric], metric
    zz, bad = display_values(z, log=log, clip=clip)
    a, b = np.asarray(result.alphas), np.asarray(result.betas)
    i0, j0 = result.origin_index
    txy = _traj_xy(trajectory)
    title = title or ("loss landscape" if metric is None else metric)
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        if kind == "surface":
            raise ValueError("`kind='surface'` needs backend='plotly'")
        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 4))
        else:
            fig = ax.figure
        A, B = np.meshgrid(a, b, indexing="ij")
        if kind == "contour":
            cs = ax.contourf(A, B, zz, levels=levels, cmap="viridis")
            ax.contour(A, B, zz, levels=levels, colors="k", linewidths=0.3)
        else:
            cs = ax.pcolormesh(A, B, zz, shading="nearest", cmap="viridis")
        fig.colorbar(cs, ax=ax, label=label)
        if bad.any():
            ax.scatter(A[bad], B[bad], marker="x", color="red", s=12, label="diverged")
        ax.plot([a[i0]], [b[j0]], marker="*", color="white", markeredgecolor="k", ms=12, ls="", label="model")
        if txy is not None:
            ax.plot(*txy, "-o", color="orange", ms=3, lw=1.5, label="trajectory")
        ax.set_xlabel("alpha (direction 1)")
        ax.set_ylabel("beta (direction 2)")
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=8)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    if kind == "surface":
        fig.add_trace(go.Surface(x=a, y=b, z=zz.T, colorscale="Viridis", colorbar={"title": label}))
        fig.add_trace(
            go.Scatter3d(
                x=[a[i0]],
                y=[b[j0]],
                z=[zz[i0, j0]],
                mode="markers",
                name="model",
                marker={"size": 5, "color": "white", "line": {"color": "black", "width": 1}},
            )
        )
        if bad.any():
            A, B = np.meshgrid(a, b, indexing="ij")
            fig.add_trace(
                go.Scatter3d(
                    x=A[bad],
                    y=B[bad],
                    z=zz[bad],
                    mode="markers",
                    name="diverged",
                    marker={"size": 2, "color": "red"},
                )
            )
        if txy is not None:
            from scipy.interpolate import RegularGridInterpolator

            f = RegularGridInterpolator((a, b), zz, bounds_error=False, fill_value=None)
            tz = f(np.stack(txy, axis=1))
            fig.add_trace(
                go.Scatter3d(
                    x=txy[0],
                    y=txy[1],
                    z=tz,
                    mode="lines+markers",
                    name="trajectory",
                    marker={"size": 2, "color": "orange"},
                    line={"color": "orange"},
                )
            )
        fig.update_layout(scene={"xaxis_title": "alpha", "yaxis_title": "beta", "zaxis_title": label})
    else:
        if kind == "contour":
            fig.add_trace(
                go.Contour(
                    x=a,
                    y=b,
                    z=zz.T,
                    colorscale="Viridis",
                    ncontours=levels,
                    colorbar={"title": label},
                    name=label,
                )
            )
        else:
            fig.add_trace(
                go.Heatmap(x=a, y=b, z=zz.T, colorscale="Viridis", colorbar={"title": label}, name=label)
            )
        if bad.any():
            A, B = np.meshgrid(a, b, indexing="ij")
            fig.add_trace(
                go.Scatter(
                    x=A[bad],
                    y=B[bad],
                    mode="markers",
                    name="diverged",
                    marker={"symbol": "x", "color": "red", "size": 5},
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[a[i0]],
                y=[b[j0]],
                mode="markers",
                name="model",
                marker={
                    "symbol": "star",
                    "size": 14,
                    "color": "white",
                    "line": {"color": "black", "width": 1},
                },
            )
        )
        if txy is not None:
            fig.add_trace(
                go.Scatter(
                    x=txy[0],
                    y=txy[1],
                    mode="lines+markers",
                    name="trajectory",
                    marker={"size": 4, "color": "orange"},
                    line={"color": "orange"},
                )
            )
        fig.update_layout(xaxis_title="alpha (direction 1)", yaxis_title="beta (direction 2)")
    fig.update_layout(title=title, width=560, height=480, legend={"x": 0.01, "y": 0.99})
    return fig


def plot_line(result, *, backend: str = "plotly", metric: str | None = None, log: bool = False, ax=None):
    """Draw a :class:`~lossviz.landscape.Line` (loss against alpha)."""
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    z = result.loss if metric is None else result.metrics[metric]
    zz, bad = display_values(z, log=log)
    a = np.asarray(result.alphas)
    label = metric or ("log10 loss" if log else "loss")
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 3.5))
        else:
            fig = ax.figure
        ax.plot(a, zz, "-", label=label)
        if bad.any():
            ax.plot(a[bad], zz[bad], "x", color="red", label="diverged")
        ax.axvline(0.0, color="gray", lw=0.8)
        ax.set_xlabel("alpha")
        ax.set_ylabel(label)
        ax.legend()
        return fig
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=a, y=zz, mode="lines", name=label))
    if bad.any():
        fig.add_trace(
            go.Scatter(
                x=a[bad], y=zz[bad], mode="markers", name="diverged", marker={"symbol": "x", "color": "red"}
            )
        )
    fig.update_layout(xaxis_title="alpha", yaxis_title=label, width=560, height=380)
    return fig


def plot_interpolation(results, labels=None, *, backend: str = "plotly", metric: str | None = None, ax=None):
    """Draw one or several :class:`~lossviz.landscape.Interpolation` curves (with their barrier)."""
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    if not isinstance(results, (list, tuple)):
        results = [results]
    if labels is None:
        labels = [f"path {k}" for k in range(len(results))] if len(results) > 1 else ["interpolation"]
    if len(labels) != len(results):
        raise ValueError(f"`labels` has {len(labels)} entries for {len(results)} results")
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 3.5))
        else:
            fig = ax.figure
        for r, lab in zip(results, labels):
            z = r.loss if metric is None else r.metrics[metric]
            zz, _ = display_values(z)
            ax.plot(
                r.alphas, zz, "-o", ms=3, label=f"{lab} (barrier {r.barrier:.3g})" if metric is None else lab
            )
        ax.set_xlabel("alpha (0 = model A, 1 = model B)")
        ax.set_ylabel(metric or "loss")
        ax.legend(fontsize=8)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    for r, lab in zip(results, labels):
        z = r.loss if metric is None else r.metrics[metric]
        zz, _ = display_values(z)
        fig.add_trace(
            go.Scatter(
                x=r.alphas,
                y=zz,
                mode="lines+markers",
                name=f"{lab} (barrier {r.barrier:.3g})" if metric is None else lab,
            )
        )
    fig.update_layout(
        xaxis_title="alpha (0 = model A, 1 = model B)", yaxis_title=metric or "loss", width=600, height=400
    )
    return fig


def trainability_image(result) -> np.ndarray:
    """Signed colour values in [-1, 1]: converged cells negative (darker = faster), diverged positive.

    Converged: ``-(1 - s)`` with ``s`` = mean loss / L0 rescaled to [0, 1] (fast convergence -> -1);
    diverged: ``+(1 - k / steps)`` with ``k`` the step of divergence (fast divergence -> +1);
    cells neither converged nor diverged: 0.
    """
    conv, div = result.converged, result.diverged
    img = np.zeros(conv.shape)
    score = np.asarray(result.score, dtype=float)
    if conv.any():
        s = np.clip(score[conv], 0.0, 1.0)
        img[conv] = -(0.15 + 0.85 * (1.0 - s))
    if div.any():
        img[div] = 0.15 + 0.85 * np.clip(score[div], 0.0, 1.0)
    return img


def plot_trainability(result, *, backend: str = "plotly", title: str | None = None, ax=None):
    """Draw a :class:`~lossviz.landscape.Trainability` map: blue = trains, red = diverges.

    x = ``log10 lr_out`` (the second hyperparameter), y = ``log10 lr_in``; colour intensity = speed
    (of convergence or of divergence). There are no NaN colours: every cell is classified.
    """
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    img = trainability_image(result)
    x, y = np.asarray(result.y_values), np.asarray(result.x_values)
    xl, yl = result.y_label, result.x_label
    title = title or "trainability (blue: converges, red: diverges)"
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 4.5))
        else:
            fig = ax.figure
        ax.imshow(
            img,
            origin="lower",
            cmap="RdBu_r",
            vmin=-1,
            vmax=1,
            aspect="auto",
            extent=(x[0], x[-1], y[0], y[-1]),
            interpolation="nearest",
        )
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(title, fontsize=10)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(x=x, y=y, z=img, colorscale="RdBu_r", zmin=-1, zmax=1, showscale=False))
    fig.update_layout(xaxis_title=xl, yaxis_title=yl, title=title, width=520, height=480)
    return fig
