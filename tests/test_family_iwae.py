"""Importance weighted autoencoder (src/aekit/models/iwae.py)."""

import json
import math

import pytest
import torch

import aekit
from aekit.cli import main

from _resume import assert_same_run, interrupted_then_resumed  # tests/_resume.py


def _written_out(model, x, seed, k=7, stop_q=False):
    """log p(x|z_i), log p(z_i), log q(z_i|x) (each (k, batch)) and the logits, with torch.distributions, for the
    draws the model makes after torch.manual_seed(seed); ``stop_q``: q's parameters without gradient."""
    torch.manual_seed(seed)
    mu, logvar = model.encode_distribution(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(k, *mu.shape)
    logits = model.decode(z.reshape(-1, mu.shape[1])).view(k, *x.shape)
    log_px = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x.expand(k, *x.shape), reduction="none").sum(-1)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    q_mu, q_std = (mu.detach(), torch.exp(0.5 * logvar).detach()) if stop_q else (mu, torch.exp(0.5 * logvar))
    return log_px, log_pz, torch.distributions.Normal(q_mu, q_std).log_prob(z).sum(-1), logits


def test_the_loss_is_the_k_sample_bound_written_out():
    from aekit.models.iwae import IWAEModule

    torch.manual_seed(0)
    model = IWAEModule(6, [5], latent_dim=2, k=7, seed=0).train()
    x = torch.rand(4, 6)
    torch.manual_seed(1)
    out = model(x)
    log_px, log_pz, log_q, logits = _written_out(model, x, seed=1)
    bound = (torch.logsumexp(log_px + log_pz - log_q, 0) - math.log(7)).mean()
    reconstruction = -log_px[0].mean()  # what the objective adds: the first draw's term
    assert (reconstruction + out.terms["iw_latent"]).item() == pytest.approx(-bound.item(), rel=1e-5)
    assert torch.allclose(out.logits, logits[0])


def test_more_samples_train_a_better_likelihood_than_the_vae(digits):
    X, X_test = digits
    ll = {}
    for name, est in (("vae", aekit.VariationalAutoencoder((32,), latent_dim=4, epochs=20, random_state=0)),
                      ("iwae", aekit.IWAE((32,), latent_dim=4, k=10, epochs=20, random_state=0))):
        est.fit(X)
        ll[name] = est.log_likelihood(X_test[:200], k=500, random_state=0).mean()  # the same estimate for both
    assert ll["iwae"] > ll["vae"] + 0.2, ll
    assert aekit.IWAE().k == 5


def test_mse_is_refused_and_cli_trains_evaluates_samples(digits, tmp_path, capsys):
    X, _ = digits
    with pytest.raises(ValueError, match="loss"):
        aekit.IWAE((8,), loss="mse", epochs=1).fit(X)
    run = tmp_path / "i"
    assert main(["train", "--model", "iwae", "--hidden", "16", "--latent-dim", "3", "--k", "3", "--epochs", "2",
                 "--out", str(run), "--quiet", "--json"]) == 0
    est = aekit.load(run)
    assert type(est).__name__ == "IWAE" and est.k == 3 and est.model_.config["k"] == 3
    assert set(est.history_[-1]) >= {"reconstruction", "iw_latent", "loss"}
    capsys.readouterr()
    assert main(["evaluate", str(run), "--nll", "--k", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["binarized"] and 0 < result["nll"] <= result["neg_elbo"] + 1.0
    assert main(["generate", str(run), "--n", "4", "--out", str(tmp_path / "g.png"), "--json"]) == 0


def test_resume_is_bit_for_bit(digits, tmp_path):
    X, _ = digits
    kw = dict(hidden_layers=(16,), latent_dim=3, k=4, epochs=4, kl_warmup=2, random_state=0, batch_size=64)
    whole = aekit.IWAE(**kw).fit(X)
    assert_same_run(whole, interrupted_then_resumed(aekit.IWAE, X, tmp_path, **kw))  # SIGINT inside epoch 3
    assert [r["kl_weight"] for r in whole.history_] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])


def test_dreg_gradient_is_tucker_et_al_written_out():
    from aekit.models.iwae import IWAEModule

    torch.manual_seed(0)
    model = IWAEModule(6, [5], latent_dim=2, k=7, gradient="dreg", seed=0).train()
    x = torch.rand(4, 6)
    torch.manual_seed(1)
    out = model(x)
    reconstruction = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, x, reduction="none").sum(-1).mean()
    (reconstruction + out.terms["iw_latent"]).backward()  # what the objective sums
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    log_px, log_pz, log_q, _ = _written_out(model, x, seed=1, stop_q=True)
    log_w = log_px + log_pz - log_q
    w = torch.softmax(log_w.detach(), 0)
    bound = (torch.logsumexp(log_w, 0) - math.log(7)).mean()
    assert (reconstruction + out.terms["iw_latent"]).item() == pytest.approx(-bound.item(), rel=1e-5)
    decoder = [p for n, p in model.named_parameters() if n.startswith("decoder")]
    encoder = [p for n, p in model.named_parameters() if not n.startswith("decoder")]
    want_dec = torch.autograd.grad(-(w * log_w).sum(0).mean(), decoder, retain_graph=True)
    want_enc = torch.autograd.grad(-(w ** 2 * log_w).sum(0).mean(), encoder)
    names = [n for n, _ in model.named_parameters()]
    dec_names = [n for n in names if n.startswith("decoder")]
    enc_names = [n for n in names if not n.startswith("decoder")]
    for n, g in [*zip(dec_names, want_dec), *zip(enc_names, want_enc)]:
        assert torch.allclose(got[n], g, atol=1e-6), n
    standard = IWAEModule(6, [5], latent_dim=2, k=7, seed=0).train()
    torch.manual_seed(1)
    assert standard(x).terms["iw_latent"].item() == pytest.approx(out.terms["iw_latent"].item(), rel=1e-6)
