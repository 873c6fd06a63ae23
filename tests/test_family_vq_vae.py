"""VQ-VAE (src/aekit/models/vq_vae.py)."""

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main


def _quantizer(ema=True, n=6, d=3):
    from aekit.models.vq_vae import VectorQuantizer

    return VectorQuantizer(n, d, ema=ema, decay=0.9, generator=torch.Generator().manual_seed(0))


def test_each_vector_takes_its_nearest_code_and_ema_moves_the_codes():
    q = _quantizer().train()
    z = torch.randn(40, 3)
    before = q.codebook.clone()
    expected = torch.cdist(z, before).argmin(1)
    quantized, index = q(z)
    assert torch.equal(index, expected) and torch.equal(quantized, before[index])
    counts = torch.bincount(expected, minlength=6).float()
    sums = torch.zeros(6, 3).index_add_(0, expected, z)
    size = 0.1 * counts
    embed = 0.9 * before + 0.1 * sums
    smoothed = (size + 1e-5) / (size.sum() + 6e-5) * size.sum()
    assert torch.allclose(q.codebook, embed / smoothed[:, None], atol=1e-5)
    assert torch.equal(q.epoch_counts, counts)
    q.eval()
    snapshot = q.codebook.clone()
    q(z)
    assert torch.equal(q.codebook, snapshot) and torch.equal(q.epoch_counts, counts)  # evaluation changes nothing


def test_epoch_statistics_and_dead_code_restarts():
    q = _quantizer(ema=False, n=4, d=2).train()
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0], [-50.0, 50.0]]))
    z = torch.tensor([[0.1, 0.0]] * 3 + [[0.9, 1.0]])
    q(z)
    stats = q.end_epoch(torch.Generator().manual_seed(0), restart=True)
    p = np.array([0.75, 0.25])
    assert stats["usage"] == 0.5 and stats["dead_codes"] == 2
    assert stats["perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    for code in q.codebook[2:]:  # restarted on vectors of the last batch
        assert any(torch.equal(code, v) for v in z)
    assert q.epoch_counts.sum() == 0


def test_gradients_pass_the_quantization_straight_through():
    from aekit.models.vq_vae import VQVAEModule

    model = VQVAEModule(8, [6], n_codes=5, code_dim=2, n_latents=2, seed=0).train()
    out = model(torch.rand(10, 8))
    torch.nn.functional.mse_loss(torch.sigmoid(out.logits), torch.rand(10, 8)).backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0  # the decoder's gradient reached the encoder
    assert set(out.terms) == {"commitment"}  # EMA: no codebook loss
    assert set(VQVAEModule(8, [6], ema=False, n_codes=5, code_dim=2, n_latents=2, seed=0)(torch.rand(3, 8)).terms) \
        == {"codebook", "commitment"}


@pytest.mark.parametrize("kw", [dict(hidden_layers=(64,), n_latents=4),
                                dict(arch="conv", channels=(8, 16), image_shape=(8, 8))])
def test_trains_uses_its_codebook_and_decodes_indices(digits, kw):
    X, X_test = digits
    est = aekit.VQVAE(n_codes=32, code_dim=4, epochs=20, random_state=0, **kw).fit(X)
    last = est.history_[-1]
    assert last["usage"] >= 0.9 and 1 < last["perplexity"] <= 32
    used = est.codebook_usage(X_test)
    assert used["usage"] >= 0.8
    index = est.transform(X_test[:20])
    positions = 4  # dense: n_latents = 4; conv: 8x8 images, two stride-2 layers -> 2x2 positions
    assert index.dtype == np.int64 and index.shape == (20, positions) and index.max() < 32
    assert np.array_equal(est.inverse_transform(index), est.predict(X_test[:20]))
    vectors = est.set_params(codes="vectors").transform(X_test[:20])
    assert vectors.shape == (20, positions * 4)
    assert np.array_equal(est.inverse_transform(vectors), est.predict(X_test[:20]))
    assert est.score(X_test) > -0.06  # reconstructs (a mean image scores about -0.07)
    with pytest.raises(ValueError, match="code indices"):
        est.inverse_transform(index + 100)


def test_restarts_keep_codes_alive(digits):
    X, _ = digits
    usage = {restart: aekit.VQVAE((64,), n_codes=128, code_dim=4, n_latents=2, restart_dead=restart, epochs=15,
                                  random_state=0).fit(X).history_[-1]["usage"] for restart in (False, True)}
    assert usage[True] > usage[False] + 0.1, usage


def test_resume_bit_for_bit_and_cli(digits, tmp_path, capsys):
    X, _ = digits
    kw = dict(n_codes=16, code_dim=2, n_latents=3, random_state=0, batch_size=64)
    whole = aekit.VQVAE((16,), epochs=4, **kw).fit(X)
    aekit.VQVAE((16,), epochs=2, checkpoint_dir=tmp_path / "r", **kw).fit(X)
    resumed = aekit.load(tmp_path / "r").set_params(epochs=4, warm_start=True).fit(X)
    assert [r["loss"] for r in resumed.history_] == [r["loss"] for r in whole.history_]
    assert torch.equal(resumed.model_.quantizer.codebook, whole.model_.quantizer.codebook)
    run = tmp_path / "q"
    assert main(["train", "--model", "vq-vae", "--hidden", "16", "--n-codes", "16", "--code-dim", "2", "--epochs", "2",
                 "--out", str(run), "--quiet", "--json"]) == 0
    assert type(aekit.load(run)).__name__ == "VQVAE"
    capsys.readouterr()
    assert main(["generate", str(run), "--out", str(tmp_path / "g.png")]) == 2
    assert "does not generate" in capsys.readouterr().err
