import numpy as np
import pytest

from tellkit.errors import TellkitError
from tellkit.probe.separation import separation_metrics, tsne_2d

D = 16


def _blobs(gap: float, n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two unit-variance Gaussian blobs whose means differ by `gap` along one axis.

    A shared offset mimics hidden states, which all point roughly the same
    way; without it the cosine-based metrics would saturate at any gap.
    """
    rng = np.random.default_rng(seed)
    offset = np.full(D, 2.0)
    shift = np.zeros(D)
    shift[0] = gap / 2
    task = rng.normal(size=(n, D)) + offset + shift
    general = rng.normal(size=(n, D)) + offset - shift
    return np.vstack([task, general]), np.r_[np.ones(n, int), np.zeros(n, int)]


def test_separable_blobs():
    X, y = _blobs(gap=40.0)
    m = separation_metrics(X, y)
    assert m["probe_accuracy"] == pytest.approx(1.0)
    assert m["probe_accuracy_std"] == pytest.approx(0.0)
    assert m["silhouette"] > 0.5
    assert m["centroid_cosine_distance"] > 0.5
    assert (m["n_task"], m["n_general"], m["probe_folds"]) == (60, 60, 5)


def test_same_distribution_is_inseparable():
    X, y = _blobs(gap=0.0, n=100)
    m = separation_metrics(X, y)
    assert m["probe_accuracy"] < 0.7
    assert abs(m["silhouette"]) < 0.1
    assert m["centroid_cosine_distance"] < 0.05


def test_more_separated_pair_scores_higher():
    # Gaps small enough that the probe is not saturated at 1.0 for either.
    near = separation_metrics(*_blobs(gap=0.5, n=100))
    far = separation_metrics(*_blobs(gap=2.0, n=100))
    for key in ("centroid_cosine_distance", "silhouette", "probe_accuracy"):
        assert far[key] > near[key], key


def test_deterministic_for_seed():
    X, y = _blobs(gap=1.0)
    assert separation_metrics(X, y, seed=3) == separation_metrics(X, y, seed=3)


def test_folds_capped_by_smallest_class():
    X, y = _blobs(gap=10.0, n=3)
    assert separation_metrics(X, y)["probe_folds"] == 3


@pytest.mark.parametrize("n_task", [0, 1])
def test_too_few_examples_of_a_class(n_task):
    X, y = _blobs(gap=5.0, n=10)
    keep = np.r_[np.arange(n_task), np.arange(10, 20)]
    with pytest.raises(TellkitError, match="at least 2 task"):
        separation_metrics(X[keep], y[keep])


def test_bad_labels_and_shapes():
    X, y = _blobs(gap=5.0, n=5)
    with pytest.raises(TellkitError, match="0 \\(general\\) or 1"):
        separation_metrics(X, y * 2)
    with pytest.raises(TellkitError, match="labels"):
        separation_metrics(X, y[:-1])
    with pytest.raises(TellkitError, match="2-D"):
        separation_metrics(X[:, 0], y)


def test_tsne_shape_and_determinism():
    X, _ = _blobs(gap=5.0, n=20)
    a, b = tsne_2d(X, seed=1), tsne_2d(X, seed=1)
    assert a.shape == (40, 2)
    np.testing.assert_allclose(a, b)


def test_tsne_small_n():
    X, _ = _blobs(gap=5.0, n=2)
    assert tsne_2d(X).shape == (4, 2)
    with pytest.raises(TellkitError, match="at least 3"):
        tsne_2d(X[:2])
