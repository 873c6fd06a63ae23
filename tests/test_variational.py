import numpy as np
import pytest
import torch

import aekit
from aekit.models.variational import gaussian_kl


def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4) * 0.5
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200000, 3, 4)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(0.0, 1.0)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    assert torch.allclose(gaussian_kl(mu, logvar), mc, rtol=0.02, atol=0.01)


def test_loss_is_negative_elbo_in_nats_and_sampling_works(digits):
    X, X_test = digits
    vae = aekit.VariationalAutoencoder((64, 32), latent_dim=4, epochs=20, random_state=0).fit(X)
    last = vae.history_[-1]
    assert last["loss"] == pytest.approx(last["reconstruction"] + last["kl"], rel=1e-6)
    assert last["reconstruction"] > 1.0  # summed over 64 pixels, not averaged
    assert vae.history_[-1]["loss"] < vae.history_[0]["loss"]
    samples = vae.sample(16, random_state=0)
    assert samples.shape == (16, 64) and (samples >= 0).all() and (samples <= 1).all()
    assert np.array_equal(samples, vae.sample(16, random_state=0))
    assert vae.transform(X_test).shape == (len(X_test), 4)
    assert np.array_equal(vae.predict(X_test[:5]), vae.predict(X_test[:5]))  # reconstruct from the mean


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("strided", [False, True])
def test_fast_bernoulli_is_torch_bernoulli_draw_for_draw(dtype, strided):
    from aekit.data.binarize import bernoulli

    p = torch.rand(301, 97).to(dtype)  # an odd size: no vector-width tail hides a difference
    p = p.t() if strided else p
    torch.manual_seed(5)
    expected, after = torch.bernoulli(p), torch.rand(3)
    torch.manual_seed(5)
    got, got_after = bernoulli(p), torch.rand(3)
    assert got.dtype == dtype and got.shape == p.shape
    assert torch.equal(got, expected) and torch.equal(got_after, after)  # the same draw, the generator left the same
    assert 0.4 < got.float().mean() < 0.6


def test_binarize_auto_is_dynamic_for_a_bernoulli_decoder_and_saved(digits, tmp_path):
    X, _ = digits
    vae = aekit.VariationalAutoencoder((16,), latent_dim=2, epochs=1, random_state=0).fit(X)
    assert vae.binarize == "auto" and vae.loss_ == "bce" and vae.binarize_ == "dynamic"
    assert vae.model_.config["dynamic_binarization"] is True
    loaded = aekit.load(vae.save(tmp_path / "v"))
    assert loaded.binarize_ == "dynamic"
    gauss = aekit.VariationalAutoencoder((16,), latent_dim=2, epochs=1, random_state=0).fit(X * 4 - 2)
    assert gauss.loss_ == "gaussian" and gauss.binarize_ is None  # no Bernoulli likelihood, nothing to binarize
    none = aekit.VariationalAutoencoder((16,), latent_dim=2, binarize=None, epochs=1, random_state=0).fit(X)
    assert none.binarize_ is None and none.model_.config["dynamic_binarization"] is False
