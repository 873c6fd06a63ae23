import pytest
import torch

from aekit.models import DenseAutoencoder, build_model
from aekit.registry import available_models


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_shapes_and_layer_sizes():
    model = DenseAutoencoder(784, [300, 150], seed=0)
    out = model(torch.rand(5, 784))
    assert out.logits.shape == (5, 784) and out.codings.shape == (5, 150)
    assert [layer.out_features for layer in model.encoder] == [300, 150]
    assert [layer.out_features for layer in model.decoder] == [300, 784]


def test_tied_weights_halve_weights_and_keep_own_biases():
    untied = DenseAutoencoder(784, [300, 150], seed=0)
    tied = DenseAutoencoder(784, [300, 150], tie_weights=True, seed=0)
    weights = 784 * 300 + 300 * 150
    biases = 300 + 150 + 300 + 784
    assert count(untied) == 2 * weights + biases
    assert count(tied) == weights + biases
    # decoder = encoder weights transposed: decoding by hand with W^T gives the same logits
    x = torch.rand(3, 784)
    with torch.no_grad():
        h = tied.encode(x)
        h = torch.nn.functional.elu(h @ tied.encoder[1].weight + tied.decoder_biases[0])
        expected = h @ tied.encoder[0].weight + tied.decoder_biases[1]
        assert torch.allclose(tied.decode(tied.encode(x)), expected, atol=1e-6)
    # gradients of the decoder reach the encoder's weights (one shared tensor, no copy)
    tied(x).logits.sum().backward()
    assert tied.encoder[0].weight.grad is not None


def test_regularized_weights_are_weights_only():
    for tie in (False, True):
        model = DenseAutoencoder(20, [8, 4], tie_weights=tie, seed=0)
        names = {id(p): n for n, p in model.named_parameters()}
        regs = [names[id(p)] for p in model.regularized_weights()]
        assert regs and all(n.endswith("weight") for n in regs)
        assert len(regs) == (2 if tie else 4)


@pytest.mark.parametrize("init,gain", [("he", 2.0), ("lecun", 1.0)])
def test_init_variance(init, gain):
    model = DenseAutoencoder(2000, [1000], init=init, seed=0)
    var = model.encoder[0].weight.var().item()
    assert var == pytest.approx(gain / 2000, rel=0.05)
    assert torch.count_nonzero(model.encoder[0].bias) == 0


def test_registry_rebuilds_and_refuses_unknown():
    assert "dense" in available_models()
    model = build_model("dense", {"n_features": 6, "hidden_layers": [3]})
    assert model.config["hidden_layers"] == [3]
    with pytest.raises(Exception, match="unknown model"):
        build_model("nope", {})


@pytest.mark.parametrize("bad", [dict(hidden_layers=[]), dict(hidden_layers=[0]), dict(activation="nope"),
                                 dict(init="nope"), dict(output_activation="softmax")])
def test_bad_config_is_refused(bad):
    kwargs = dict(n_features=6, hidden_layers=[3]) | bad
    with pytest.raises(Exception):
        DenseAutoencoder(**kwargs)
