"""How well hidden states separate task queries from general queries.

TELL's claim is that the anchor prompt pushes task examples into a region of
representation space distinct from the general data, so the model can learn
the task without interfering with general ability. We quantify that with three
complementary views of the same features:

- centroid cosine distance: the coarse, geometric gap between class means;
- silhouette (cosine): whether the classes form compact, separate clusters;
- linear-probe accuracy: whether *any* linear direction separates them, which
  is what a downstream layer could actually exploit.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tellkit.errors import TellkitError

MIN_PER_CLASS = 2  # stratified CV needs at least two examples of each class
MAX_FOLDS = 5


def _check_features(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise TellkitError(f"features must be a 2-D array (n, d); got shape {X.shape}")
    if not np.isfinite(X).all():
        raise TellkitError("features contain NaN or inf; check the hidden-state extraction")
    return X


def separation_metrics(X: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    """Separation of task (y=1) vs general (y=0) rows of `X`.

    Returns `centroid_cosine_distance`, `silhouette`, `probe_accuracy`,
    `probe_accuracy_std`, `probe_folds`, `n_task`, `n_general`.
    """
    X = _check_features(X)
    y = np.asarray(y).ravel()
    if y.shape[0] != X.shape[0]:
        raise TellkitError(f"got {X.shape[0]} feature rows but {y.shape[0]} labels")
    if not np.isin(y, (0, 1)).all():
        raise TellkitError("labels must be 0 (general) or 1 (task)")
    y = y.astype(int)
    n_task, n_general = int((y == 1).sum()), int((y == 0).sum())
    if min(n_task, n_general) < MIN_PER_CLASS:
        raise TellkitError(
            f"separation needs at least {MIN_PER_CLASS} task and {MIN_PER_CLASS} general "
            f"examples; got {n_task} task and {n_general} general"
        )

    mu_task, mu_general = X[y == 1].mean(axis=0), X[y == 0].mean(axis=0)
    norms = np.linalg.norm(mu_task) * np.linalg.norm(mu_general)
    # A zero centroid has no direction, so the cosine is undefined, not 0.
    distance = float(1.0 - mu_task @ mu_general / norms) if norms > 0 else float("nan")

    # k is capped by the smaller class so every fold holds both classes.
    folds = min(MAX_FOLDS, n_task, n_general)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(probe, X, y, cv=cv)

    return {
        "centroid_cosine_distance": distance,
        "silhouette": float(silhouette_score(X, y, metric="cosine")),
        "probe_accuracy": float(scores.mean()),
        "probe_accuracy_std": float(scores.std()),
        "probe_folds": folds,
        "n_task": n_task,
        "n_general": n_general,
    }


def tsne_2d(X: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE embedding of `X` (n, d), deterministic for a given `seed`."""
    X = _check_features(X)
    n = X.shape[0]
    if n < 3:
        raise TellkitError(f"t-SNE needs at least 3 points; got {n}")
    # t-SNE requires perplexity < n; (n-1)/3 is the usual small-n rule so each
    # point still has ~3 perplexity-widths of neighbours to calibrate against.
    perplexity = max(1.0, min(30.0, (n - 1) / 3))
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        # PCA init is deterministic and preserves global layout; it needs
        # at least two feature dimensions.
        init="pca" if X.shape[1] >= 2 else "random",
        random_state=seed,
    )
    return tsne.fit_transform(X)
