"""The shapes data set with known factors (aekit.data.shapes) and the MIG score (aekit.evaluation)."""

import numpy as np
import pytest

import aekit
from aekit.data import make_shapes
from aekit.evaluation import mutual_information_gap


def test_shapes_cover_every_factor_combination_once():
    data = make_shapes(size=16, n_values=(3, 2, 4, 3, 3))
    assert data.images.shape == (3 * 2 * 4 * 3 * 3, 256) and data.image_shape == (16, 16)
    assert set(np.unique(data.images)) == {0.0, 1.0}
    assert len({tuple(f) for f in data.factors}) == len(data.factors)
    assert [len(v) for v in data.values] == [3, 2, 4, 3, 3]
    areas = data.images.sum(1)
    assert areas.min() > 0  # every shape is drawn, inside the image
    big, small = data.factors[:, 1] == 1, data.factors[:, 1] == 0
    assert areas[big].mean() > 2.5 * areas[small].mean()  # scale 1 vs 0.5: about 4x the area
    # the x factor moves the shape's centre of mass right, y moves it down
    grid = data.images.reshape(-1, 16, 16)
    cx = (grid.sum(1) * np.arange(16)).sum(1) / areas
    cy = (grid.sum(2) * np.arange(16)).sum(1) / areas
    assert np.all(np.diff([cx[data.factors[:, 3] == i].mean() for i in range(3)]) > 2)
    assert np.all(np.diff([cy[data.factors[:, 4] == i].mean() for i in range(3)]) > 2)
    # an unrotated square and its quarter turn are the same image; a heart's quarter turn is not
    def image(shape, rotation):
        row = np.flatnonzero((data.factors == [shape, 1, rotation, 1, 1]).all(1))[0]
        return data.images[row]
    assert np.array_equal(image(0, 0), image(0, 1)) and not np.array_equal(image(2, 0), image(2, 1))
    with pytest.raises(ValueError, match="n_values"):
        make_shapes(n_values=(4, 1, 1, 1, 1))


def test_the_shapes_data_set_is_registered():
    ds = aekit.load_dataset("shapes")
    assert ds.image_shape == (32, 32) and len(ds.X_train) + len(ds.X_test) == 3 * 4 * 8 * 8 * 8
    assert set(np.unique(ds.y_train)) == {0, 1, 2}


def test_mig_scores_axis_aligned_codes_high_and_mixed_codes_low():
    rng = np.random.default_rng(0)
    V = rng.integers(0, 8, (4000, 3))
    aligned = V[:, [2, 0, 1]] + rng.normal(0, 0.01, (4000, 3))
    assert mutual_information_gap(aligned, V)["mig"] > 0.95
    assert mutual_information_gap(rng.normal(size=(4000, 3)), V)["mig"] < 0.02
    rotated = np.stack([V[:, 0] + V[:, 1], V[:, 0] - V[:, 1], V[:, 2]], 1) + rng.normal(0, 0.01, (4000, 3))
    result = mutual_information_gap(rotated, V)
    assert result["per_factor"][2] > 0.95 and result["per_factor"][:2].max() < 0.05  # two factors shared
    # the gap written out for one factor: (top - second) MI over the factor's entropy
    from sklearn.metrics import mutual_info_score

    bins = np.digitize(aligned[:, 0], np.histogram_bin_edges(aligned[:, 0], 20)[1:-1])
    assert result["entropy"][2] == pytest.approx(mutual_info_score(V[:, 2], V[:, 2]))
    assert mutual_information_gap(aligned, V)["mutual_information"][0, 2] == pytest.approx(
        mutual_info_score(V[:, 2], bins))
    constant = np.hstack([V, np.zeros((4000, 1), dtype=int)])
    assert np.isnan(mutual_information_gap(np.hstack([aligned, aligned[:, :1]]), constant)["per_factor"][3])
    with pytest.raises(ValueError, match="2 columns"):
        mutual_information_gap(aligned[:, :1], V)
