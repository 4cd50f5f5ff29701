"""Names that moved from ``lossviz.losses`` (and ``lossviz.losses.experiments``) to the paper layer
in 0.2; both modules alias them with a ``DeprecationWarning`` until 0.3."""

_T01 = "lossviz.papers.t01_contrastive_temperature"
_T03 = "lossviz.papers.t03_ldr_losses"

MOVED = {
    "latent_classes": f"{_T01}:latent_classes",
    "ContrastiveRun": f"{_T01}:ContrastiveRun",
    "train_contrastive": f"{_T01}:train_contrastive",
    "NoisyDigits": f"{_T03}:NoisyDigits",
    "noisy_digits": f"{_T03}:noisy_digits",
    "ClassifierRun": f"{_T03}:ClassifierRun",
    "train_classifier": f"{_T03}:train_classifier",
}
