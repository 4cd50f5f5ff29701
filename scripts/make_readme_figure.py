"""Make docs/lossviz.png, the README picture, from lossviz itself (`make figure`).

Trains the start-here MLP on two moons and draws the 2-D loss landscape around the trained
weights (filter-normalised random directions, Li et al. 2018) next to the decision boundary.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lossviz  # noqa: E402
from lossviz import data, models, train  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "lossviz.png"


def main() -> None:
    torch.set_num_threads(1)
    lossviz.seed_everything(0)
    x, y = data.two_moons(400, noise=0.15, seed=0)
    net = models.MLP(2, (32, 32), 2, activation="tanh", seed=0)
    train.fit(net, F.cross_entropy, (x, y), steps=600, optimizer="adam", lr=1e-2, progress=False)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), dpi=110)
    ax = axes[0]
    g = torch.linspace(-1.6, 2.6, 200)
    gx, gy = torch.meshgrid(g, g * 0.7 + 0.25, indexing="xy")
    with torch.no_grad():
        logits = net(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1))
        p = logits.softmax(-1)[:, 1].reshape(gx.shape)
    ax.contourf(gx, gy, p, levels=20, cmap="RdBu_r", alpha=0.8)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.3)
    ax.set_title("a trained MLP on two moons")
    ax.set_xticks([])
    ax.set_yticks([])

    ax = axes[1]
    res = lossviz.landscape.plane(net, F.cross_entropy, (x, y), span=1.0, steps=41, seed=0)
    a, b = torch.as_tensor(res.alphas), torch.as_tensor(res.betas)
    loss = torch.as_tensor(res.loss)
    cs = ax.contourf(a, b, loss.log10().T, levels=30, cmap="viridis")
    ax.plot([0], [0], "w*", ms=12)
    fig.colorbar(cs, ax=ax, label="log10 loss")
    ax.set_title("its loss landscape (filter-normalised plane)")
    ax.set_xlabel("alpha")
    ax.set_ylabel("beta")
    fig.tight_layout()
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
