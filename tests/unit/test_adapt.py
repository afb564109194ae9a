"""The functional adaptation core: vmapped == sequential == hand-written loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lifelong.adapt import (
    NonFiniteLossError,
    adapt,
    adapt_curve,
    adapt_curve_many,
    adapt_many,
    adapt_many_sequential,
    assert_vmap_safe,
    check_finite,
    forward,
    meta_loss,
    params_of,
    query_loss_many,
)

TOL = 1e-5  # float32 meets it with this small MLP and few inner steps
N_TASKS, N_SUPPORT, N_QUERY, STEPS, LR = 4, 10, 15, 3, 0.01  # LR as in MAML sinusoid
HEAD = ("4.weight", "4.bias")  # ANIL adapts only the last Linear of `mlp`


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                         nn.Linear(40, 1))


@pytest.fixture
def data() -> tuple[torch.Tensor, ...]:
    """Sinusoid regression tasks with random amplitude and phase (Finn et al. 2017)."""
    g = torch.Generator().manual_seed(1)
    amp = torch.rand(N_TASKS, 1, 1, generator=g) * 4.9 + 0.1
    phase = torch.rand(N_TASKS, 1, 1, generator=g) * torch.pi
    x = torch.rand(N_TASKS, N_SUPPORT + N_QUERY, 1, generator=g) * 10 - 5
    y = amp * torch.sin(x - phase)
    return x[:, :N_SUPPORT], y[:, :N_SUPPORT], x[:, N_SUPPORT:], y[:, N_SUPPORT:]


SETTINGS = {
    "second_order": dict(first_order=False),
    "first_order": dict(first_order=True),
    "anil": dict(first_order=False, adapt_keys=HEAD),
}


def meta_sgd_lrs(model: nn.Module) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {k: (LR * (0.5 + torch.rand_like(p))).requires_grad_()
            for k, p in model.named_parameters()}


def assert_close_dicts(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=TOL, rtol=0, msg=k)


def grads_of(loss: torch.Tensor, tensors: dict) -> dict:
    return dict(zip(tensors, torch.autograd.grad(loss, list(tensors.values()))))


@pytest.mark.parametrize("first_step", ["per-task copies", "shared"])
@pytest.mark.parametrize("setting", [*SETTINGS, "meta_sgd"])
def test_vmapped_equals_sequential(setting, first_step, data, monkeypatch):
    """Both ways of taking the first inner step of stacked tasks (see `_shared_first_step`; this
    small MLP is below the size where it is used unless the threshold is lowered) give the same."""
    if first_step == "shared":
        monkeypatch.setattr("lifelong.adapt.SHARED_FIRST_STEP", 0)
    model = mlp()
    params = params_of(model)
    xs, ys, xq, yq = data
    lrs = meta_sgd_lrs(model) if setting == "meta_sgd" else None
    inner = dict(loss_fn=F.mse_loss, steps=STEPS, lr=LR, per_param_lr=lrs,
                 **SETTINGS.get(setting, {}))

    assert_close_dicts(adapt_many(model, params, xs, ys, **inner),
                       adapt_many_sequential(model, params, xs, ys, **inner))

    wrt = {**params, **{f"lr/{k}": v for k, v in (lrs or {}).items()}}
    grad_vmapped = grads_of(meta_loss(model, params, xs, ys, xq, yq, **inner), wrt)
    grad_sequential = grads_of(
        meta_loss(model, params, xs, ys, xq, yq, vectorize=False, **inner), wrt)
    assert_close_dicts(grad_vmapped, grad_sequential)
    assert all(g.abs().sum() > 0 for g in grad_vmapped.values())  # every name gets a gradient


def test_anil_leaves_the_body_unadapted_but_it_still_gets_meta_gradient(data):
    model = mlp()
    params = params_of(model)
    xs, ys, xq, yq = data
    adapted = adapt_many(model, params, xs, ys, loss_fn=F.mse_loss, steps=STEPS, lr=LR,
                         adapt_keys=HEAD)
    assert all(torch.equal(adapted[k][2], params[k]) for k in ("0.weight", "2.bias"))
    assert not torch.equal(adapted["4.weight"][2], params["4.weight"])
    loss = meta_loss(model, params, xs, ys, xq, yq, loss_fn=F.mse_loss, steps=STEPS, lr=LR,
                     adapt_keys=HEAD)
    loss.backward()
    assert model[0].weight.grad.abs().sum() > 0


def test_second_order_meta_gradient_matches_a_plain_autograd_loop(data):
    model = mlp()
    params = params_of(model)
    xs, ys, xq, yq = data
    names, originals = list(params), list(params.values())

    query_losses = []
    for x_s, y_s, x_q, y_q in zip(xs, ys, xq, yq):
        fast = originals
        for _ in range(STEPS):
            loss = F.mse_loss(torch.func.functional_call(model, dict(zip(names, fast)), x_s), y_s)
            grads = torch.autograd.grad(loss, fast, create_graph=True)
            fast = [p - LR * g for p, g in zip(fast, grads)]
        query_losses.append(
            F.mse_loss(torch.func.functional_call(model, dict(zip(names, fast)), x_q), y_q))
    expected = dict(zip(names, torch.autograd.grad(torch.stack(query_losses).mean(), originals)))

    got = grads_of(meta_loss(model, params, xs, ys, xq, yq, loss_fn=F.mse_loss, steps=STEPS,
                             lr=LR), params)
    assert_close_dicts(got, expected)


def test_first_order_meta_gradient_is_the_query_gradient_at_the_adapted_params(data):
    model = mlp()
    params = params_of(model)
    xs, ys, xq, yq = data

    expected = {k: torch.zeros_like(p) for k, p in params.items()}
    for x_s, y_s, x_q, y_q in zip(xs, ys, xq, yq):
        fast = {k: p.detach() for k, p in params.items()}
        for _ in range(STEPS):
            leaves = {k: p.clone().requires_grad_() for k, p in fast.items()}
            grads = grads_of(F.mse_loss(forward(model, leaves, x_s), y_s), leaves)
            fast = {k: fast[k] - LR * grads[k] for k in fast}
        leaves = {k: p.clone().requires_grad_() for k, p in fast.items()}
        at_adapted = grads_of(F.mse_loss(forward(model, leaves, x_q), y_q), leaves)
        expected = {k: expected[k] + at_adapted[k] / N_TASKS for k in expected}

    got = grads_of(meta_loss(model, params, xs, ys, xq, yq, loss_fn=F.mse_loss, steps=STEPS,
                             lr=LR, first_order=True), params)
    assert_close_dicts(got, expected)


def test_one_inner_step_on_a_linear_model_matches_the_closed_form():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -1.0]]))
        model.bias.fill_(0.25)
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [3.0, -2.0]])
    y = torch.tensor([[1.0], [0.0], [2.0]])

    # MSE = mean(r^2), r = x w^T + b - y  =>  dL/dw = 2/N r^T x,  dL/db = 2/N sum(r)
    w, b, lr = model.weight.detach(), model.bias.detach(), 0.1
    r = x @ w.T + b - y
    expected = {"weight": w - lr * 2 / len(x) * r.T @ x, "bias": b - lr * 2 / len(x) * r.sum(0)}

    adapted = adapt(model, params_of(model), x, y, loss_fn=F.mse_loss, steps=1, lr=lr)
    assert_close_dicts(adapted, expected)


def test_adapt_curve_starts_unadapted_and_leaves_params_untouched(data):
    model = mlp()
    params = params_of(model)
    before = {k: p.detach().clone() for k, p in params.items()}
    xs, ys, xq, yq = data

    curve = adapt_curve(model, params, xs[0], ys[0], xq[0], yq[0], loss_fn=F.mse_loss,
                        score_fn=F.mse_loss, steps=STEPS, lr=LR)
    support_curve = adapt_curve(model, params, xs[0], ys[0], xs[0], ys[0], loss_fn=F.mse_loss,
                                score_fn=F.mse_loss, steps=STEPS, lr=LR)

    assert curve.shape == (STEPS + 1,)
    assert not curve.requires_grad
    torch.testing.assert_close(curve[0], F.mse_loss(model(xq[0]), yq[0]).detach())
    assert (support_curve.diff() < 0).all()  # small-lr gradient descent lowers its own loss
    assert_close_dicts({k: p.detach() for k, p in params.items()}, before)
    assert all(p.grad is None for p in model.parameters())


def test_adapt_curve_many_matches_per_task_curves_and_runs_under_no_grad(data):
    model = mlp()
    params = params_of(model)
    xs, ys, xq, yq = data
    kwargs = dict(loss_fn=F.mse_loss, score_fn=F.mse_loss, steps=STEPS, lr=LR,
                  per_param_lr=meta_sgd_lrs(model))

    with torch.no_grad():
        curves = adapt_curve_many(model, params, xs, ys, xq, yq, **kwargs)

    assert curves.shape == (N_TASKS, STEPS + 1)
    expected = torch.stack([adapt_curve(model, params, *task, **kwargs)
                            for task in zip(xs, ys, xq, yq)])
    torch.testing.assert_close(curves, expected, atol=TOL, rtol=0)


def test_query_loss_many_is_the_per_task_query_loss(data):
    model = mlp()
    params = params_of(model)
    xs, ys, xq, yq = data
    inner = dict(loss_fn=F.mse_loss, steps=STEPS, lr=LR)
    adapted = adapt_many(model, params, xs, ys, **inner)

    losses = query_loss_many(model, adapted, xq, yq, F.mse_loss)

    assert losses.shape == (N_TASKS,)
    torch.testing.assert_close(losses.mean(), meta_loss(model, params, xs, ys, xq, yq, **inner),
                               atol=TOL, rtol=0)


def test_batchnorm_with_running_stats_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match=r"norm='none' or BatchNorm\(track_running_stats=False\)"):
        assert_vmap_safe(nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.Linear(8, 1)))
    assert_vmap_safe(nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8, track_running_stats=False)))


def test_a_diverging_inner_loop_is_caught_once_with_the_setting_named(data):
    model = mlp()
    xs, ys, xq, yq = data
    loss = meta_loss(model, params_of(model), xs, ys, xq, yq, loss_fn=F.mse_loss, steps=5,
                     lr=1e6)
    with pytest.raises(NonFiniteLossError, match="inner_lr"):
        check_finite(loss, "meta-loss")
    with pytest.raises(ValueError, match=r"inner_lr` \(now 0.5\)"):
        check_finite(torch.tensor(float("nan")), "inner-loop loss",
                     fix="lower `inner_lr` (now 0.5) or use fewer `inner_steps`")
    check_finite(torch.tensor(1.0), "meta-loss")


def test_unknown_or_empty_adapt_keys_fail_fast(data):
    model = mlp()
    xs, ys, _, _ = data
    with pytest.raises(KeyError, match="head.weight"):
        adapt(model, params_of(model), xs[0], ys[0], loss_fn=F.mse_loss, steps=1, lr=LR,
              adapt_keys=["head.weight"])
    with pytest.raises(ValueError, match="adapt_keys is empty"):
        adapt(model, params_of(model), xs[0], ys[0], loss_fn=F.mse_loss, steps=1, lr=LR,
              adapt_keys=[])
