"""A linear autoencoder finds PCA's subspace (Géron ch. 15, "Performing PCA with an undercomplete linear
autoencoder"): 3-D toy data -> 2-D codings, Adam lr 0.01, 1000 full-batch iterations.

    python examples/linear_ae_pca.py
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

import aekit
from aekit.data import make_tilted_sheet


def main() -> None:
    X = make_tilted_sheet()
    ae = aekit.Autoencoder((2,), activation="linear", init="he", learning_rate=0.01, batch_size=len(X), epochs=1000,
                           random_state=0).fit(X)
    pca = PCA(2).fit(X)
    W = ae.model_.decoder[0].weight.detach().cpu().numpy()  # (3, 2): spans the decoder's image
    angles = np.degrees(subspace_angles(W, pca.components_.T))
    ae_mse = -ae.score(X)
    pca_mse = float(np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2))
    print(f"principal angles to PCA's subspace (degrees): {np.round(angles, 4).tolist()}")
    print(f"reconstruction MSE: linear AE {ae_mse:.6f}, PCA {pca_mse:.6f} (ratio {ae_mse / pca_mse:.4f})")


if __name__ == "__main__":
    main()
