"""The diagonal empirical Fisher: both routes give the mean squared per-example gradient."""

import pytest
import torch
from torch import nn

from lifelong.models import ModelSpec, build_model
from lifelong.strategies import fisher
from lifelong.training import task_loss


def per_example_reference(model: nn.Module, x, y, loss) -> dict[str, torch.Tensor]:
    """The definition, one example at a time."""
    params = dict(model.named_parameters())
    sums = {n: torch.zeros_like(p) for n, p in params.items()}
    model.eval()
    for xi, yi in zip(x, y):
        grads = torch.autograd.grad(loss(model(xi[None]), yi[None]), list(params.values()))
        for n, g in zip(params, grads):
            sums[n] += g ** 2
    return {n: s / len(x) for n, s in sums.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-5, atol=1e-9, msg=n)


@pytest.fixture
def no_fallback(monkeypatch):
    def fail(*args):
        raise AssertionError("took the per-example route")
    monkeypatch.setattr(fisher, "_per_example_fisher_sums", fail)


MASK = torch.tensor([float("-inf"), 0.0, 0.0, float("-inf"), float("-inf")])


@pytest.mark.parametrize("kind, mask", [("classification", None), ("classification", MASK), ("regression", None)])
def test_mlp_fisher_from_layer_products_equals_the_per_example_definition(kind, mask, no_fallback):
    g = torch.Generator().manual_seed(0)
    n_out = 1 if kind == "regression" else 5
    model = build_model(ModelSpec(hidden=[12, 7], activation="tanh"), (2, 3), n_out)
    x = torch.randn(37, 2, 3, generator=g)
    y = torch.randn(37, generator=g) if kind == "regression" else torch.randint(1, 3, (37,), generator=g)

    def loss(out, target):
        return task_loss(out, target, kind, mask)

    model.train()
    got = fisher.diagonal_fisher(model, x, y, loss, chunk=10)  # 4 chunks, the last one short
    assert model.training  # the mode it had
    assert_same(got, per_example_reference(model, x, y, loss))


class TwiceApplied(nn.Module):
    """One Linear used twice in a forward pass: its per-example gradient is a sum of two outer products."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.inner(torch.tanh(self.inner(x)))))


@pytest.mark.parametrize("make, input_shape", [
    (lambda: build_model(ModelSpec(type="convnet", channels=[2], hidden=[6]), (1, 4, 4), 3), (1, 4, 4)),
    (TwiceApplied, (4,)),
    (lambda: nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, 3)), (4,)),  # overwrites an output
])
def test_other_models_fall_back_to_per_example_gradients(make, input_shape):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(9, *input_shape)
    y = torch.randint(0, 3, (9,))

    def loss(out, target):
        return task_loss(out, target, "classification")

    assert fisher._linear_fisher_sums(model, x, y, loss, chunk=4) is None
    assert_same(fisher.diagonal_fisher(model, x, y, loss, chunk=4), per_example_reference(model, x, y, loss))
