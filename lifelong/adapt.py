"""Functional per-task adaptation: inner-loop SGD on a parameter dict, vmapped over tasks.

A model is used as a pure function of a dict of tensors through `torch.func.functional_call`,
so adapting to a task is `adapt(params, support) -> params'` with no module cloning. The same
code runs for one task or for a whole meta-batch at once: the `*_many` functions and
`meta_loss` give every task its own copy of the adapted parameters (a leading task dimension),
run the forward pass under `torch.func.vmap`, and take the inner gradients with plain
`torch.autograd.grad` over those batched operations (see `_trajectory`). Every gradient-based
meta-learner in `lifelong.strategies` is built from these pieces:

- MAML (Finn et al. 2017): `meta_loss(..., first_order=False)`; the inner steps keep their
  graph, so the meta-gradient contains the second-order terms.
- FOMAML (Finn et al. 2017; Nichol et al. 2018): `first_order=True`; each inner gradient is
  detached, so the meta-gradient is the query-loss gradient at the adapted parameters.
- Reptile (Nichol et al. 2018): `adapt_many(..., first_order=True)`, then move the
  meta-parameters toward the mean adapted parameters.
- ANIL (Raghu et al. 2020): `adapt_keys` names the head; the body is not adapted but still
  receives meta-gradient through the forward pass.
- Meta-SGD (Li et al. 2017): `per_param_lr` holds a learned step size per parameter entry,
  and the meta-gradient reaches those step sizes too.
- OML, ANML, La-MAML (the continual meta-learners): `adapt_online` steps once on each batch of
  a trajectory drawn from the stream, instead of repeatedly on one support set.

Nothing here syncs with the device inside the inner loop (no `.item()`, no per-step checks):
callers call `check_finite` once per meta-batch on the final loss. Tensors stay on whatever
device they are on; there is no device-specific code.

BatchNorm policy: `functional_call` is given the model's buffers, but adaptation uses no
running statistics. Updating running statistics in place is a side effect that `vmap` cannot
batch and that would leak one task's statistics into the next, so every entry point calls
`assert_vmap_safe`, which rejects norm layers with `track_running_stats=True`. Build the
backbone with `norm='none'` or `BatchNorm(track_running_stats=False)`; the latter normalises
with the statistics of the batch at hand, per task under `vmap`.

Models that draw random numbers in their forward (dropout in training mode) are refused by
`vmap`'s default `randomness='error'`; put them in eval mode or use the sequential paths.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn.modules.batchnorm import _NormBase

# Re-exported: one error class for every non-finite loss, training and adaptation alike, so the
# CLI (which catches `lifelong.training.NonFiniteLossError`) reports both the same way.
from lifelong.training import NonFiniteLossError  # noqa: F401

Params = dict[str, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


INNER_LOOP_FIX = "lower `inner_lr` or use fewer `inner_steps`"


def check_finite(tensor: Tensor, what: str, *, fix: str = INNER_LOOP_FIX) -> None:
    """Raise `NonFiniteLossError` if `tensor` holds a NaN or infinity.

    This syncs with the device, so call it once per meta-batch on the final loss, never inside
    the (vmapped) inner loop. Pass `fix` with the current values, e.g.
    ``fix=f"lower `inner_lr` (now {lr}) or use fewer `inner_steps` (now {steps})"``.
    """
    if not bool(torch.isfinite(tensor).all()):
        raise NonFiniteLossError(f"{what} became non-finite ({tensor.detach().cpu()}); {fix}")


def assert_vmap_safe(model: nn.Module) -> None:
    """Reject norm layers that keep running statistics (see the BatchNorm policy above)."""
    for name, module in model.named_modules():
        if isinstance(module, _NormBase) and module.track_running_stats:
            raise ValueError(
                f"layer {name!r} ({type(module).__name__}) tracks running statistics, which "
                "per-task adaptation does not use and vmap cannot update; build the backbone "
                "with norm='none' or BatchNorm(track_running_stats=False)"
            )


def params_of(model: nn.Module, *, detach: bool = False) -> Params:
    """The model's named parameters as a dict.

    Not detached by default: the values are the model's own `nn.Parameter`s, so a meta-loss
    built from them backpropagates into `model.parameters()` and an ordinary optimizer steps
    them. `detach=True` gives graph-free views for evaluation.
    """
    return {name: p.detach() if detach else p for name, p in model.named_parameters()}


def buffers_of(model: nn.Module) -> Params:
    """The model's named buffers as a dict (passed to every functional forward)."""
    return dict(model.named_buffers())


def forward(model: nn.Module, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Run `model` on `x` with `params` in place of its own parameters."""
    return functional_call(model, (dict(params), buffers_of(model)), (x,))


def _split(params: Params, adapt_keys: Collection[str] | None) -> tuple[Params, Params]:
    """Split params into (fast, frozen): the adapted subset and the rest."""
    keys = set(params) if adapt_keys is None else set(adapt_keys)
    if not keys:
        raise ValueError("adapt_keys is empty; name at least one parameter, or pass None "
                         "to adapt them all")
    unknown = keys - set(params)
    if unknown:
        raise KeyError(f"adapt_keys names unknown parameters {sorted(unknown)}; "
                       f"the model has {sorted(params)}")
    fast = {k: v for k, v in params.items() if k in keys}
    frozen = {k: v for k, v in params.items() if k not in keys}
    return fast, frozen


def _step_sizes(fast: Params, lr: float | Tensor,
                per_param_lr: Mapping[str, Tensor] | None) -> dict[str, float | Tensor]:
    """Step size per adapted parameter: its Meta-SGD rate if given, else the shared `lr`."""
    per_param_lr = per_param_lr or {}
    unknown = set(per_param_lr) - set(fast)
    if unknown:
        raise KeyError(f"per_param_lr names parameters that are not adapted: {sorted(unknown)}; "
                       f"adapted are {sorted(fast)}")
    return {k: per_param_lr.get(k, lr) for k in fast}


def _gradient(loss_of: Callable[[Params], Tensor], fast: Params, *, track: bool,
              create_graph: bool) -> Params:
    """d(sum of the task losses)/d(fast), computed even under `torch.no_grad()`.

    Unless `track`ed (grad mode was on) and on the graph, tensors become fresh leaves, so the
    gradient exists; the caller steps the original tensors, so nothing attaches to them. (A view
    made under `no_grad` of a parameter says `requires_grad` but passes its gradient to the
    parameter, not to itself, hence `track`.) Parameters the loss does not use get a zero gradient.
    """
    with torch.enable_grad():
        inputs = {k: v if track and v.requires_grad else v.detach().requires_grad_() for k, v in fast.items()}
        grads = torch.autograd.grad(loss_of(inputs).sum(), tuple(inputs.values()), create_graph=create_graph,
                                    allow_unused=True, materialize_grads=True)
    return dict(zip(inputs, grads))


def _trajectory(loss_of: Callable[[Params], Tensor], fast: Params, *, steps: int,
                step_size: Mapping[str, float | Tensor], first_order: bool) -> Iterator[Params]:
    """Yield the adapted parameters after 0, 1, ..., `steps` inner SGD steps.

    `loss_of(fast)` is the support loss of one task (a scalar), or of a batch of tasks (shape
    (n_tasks,)) when every tensor of `fast` carries a leading task dimension. Tasks share no
    adapted parameter, so the gradient of their summed loss is each task's own gradient, and a
    whole meta-batch steps with one plain `torch.autograd.grad` over batched operations. That is
    what makes the vmapped paths fast: `vmap(grad(...))` computes the same numbers, but pays
    functorch's per-operation overhead on every backward operation too (measured on Finn et
    al.'s sinusoid MAML, one CPU thread: 2.8 -> 2.2 ms per meta-iteration).

    Second order keeps each inner gradient on the graph (when grad mode is on); `first_order`
    detaches it, so the meta-gradient is the query gradient at the adapted parameters.
    """
    track = torch.is_grad_enabled()
    yield fast
    for _ in range(steps):
        grads = _gradient(loss_of, fast, track=track, create_graph=track and not first_order)
        fast = {k: fast[k] - step_size[k] * grads[k] for k in fast}
        yield fast


def _loss_of(model: nn.Module, frozen: Params, x: Tensor, y: Tensor, loss_fn: LossFn, *,
             batched: bool) -> Callable[[Params], Tensor]:
    """The loss on (x, y) as a function of the adapted parameters; per task under `batched`.

    Batched, `fast`, `x` and `y` carry the task dimension and `frozen` is shared by all tasks.
    """
    def one_task(fast: Params, x: Tensor, y: Tensor) -> Tensor:
        return loss_fn(forward(model, {**frozen, **fast}, x), y)

    run = vmap(one_task) if batched else one_task
    return lambda fast: run(fast, x, y)


# Above this many entries in the per-task copies of the adapted weights (n_tasks x their size),
# the first inner step of a meta-training batch runs on the shared weights (`_shared_first_step`).
SHARED_FIRST_STEP = 2 ** 21


def _inner_loop(model: nn.Module, params: Params, x_support: Tensor, y_support: Tensor, *,
                loss_fn: LossFn, steps: int, lr: float | Tensor, first_order: bool,
                adapt_keys: Collection[str] | None, per_param_lr: Mapping[str, Tensor] | None,
                n_tasks: int | None) -> tuple[Params, Iterator[Params]]:
    """(frozen, trajectory of the adapted subset) for one task, or `n_tasks` stacked tasks."""
    assert_vmap_safe(model)
    fast, frozen = _split(params, adapt_keys)
    step_size = _step_sizes(fast, lr, per_param_lr)
    batched = n_tasks is not None
    loss_of = _loss_of(model, frozen, x_support, y_support, loss_fn, batched=batched)
    meta_training = batched and steps and torch.is_grad_enabled()
    if meta_training and n_tasks * sum(v.numel() for v in fast.values()) >= SHARED_FIRST_STEP:
        fast = _shared_first_step(model, frozen, fast, x_support, y_support, loss_fn=loss_fn,
                                  step_size=step_size, first_order=first_order)
        steps -= 1
    elif batched:  # a view per task; their gradients flow back summed into `params`
        fast = {k: v.expand(n_tasks, *v.shape) for k, v in fast.items()}
    return frozen, _trajectory(loss_of, fast, steps=steps, step_size=step_size, first_order=first_order)


def _shared_first_step(model: nn.Module, frozen: Params, fast: Params, xs: Tensor, ys: Tensor, *,
                       loss_fn: LossFn, step_size: Mapping[str, float | Tensor], first_order: bool) -> Params:
    """The first inner step of stacked tasks, taken from the weights they all start from.

    Every task starts from the same weights, so the first forward pass can run on them unbatched
    (one matrix product over all tasks' examples) with per-task gradients from `vmap(grad(...))`,
    instead of on per-task copies. For large weights the copies dominate; for small ones
    functorch's per-operation overhead in the backward pass costs more than they do, hence the
    threshold. `benchmarks/bench_first_step.py` times both ways (one CPU thread, 25 tasks, one
    second-order step): shared / copies 0.66-0.82 for an MLP 784-256-256-10, 1.19-1.26 for Finn et
    al.'s sinusoid MLP, about 1 (either side, run to run) between 0.3 and 1.4 million entries. The
    gradients are the same either way (tests/unit/test_adapt.py).
    """
    def one_task(weights: Params, x: Tensor, y: Tensor) -> Tensor:
        return loss_fn(forward(model, {**frozen, **weights}, x), y)

    grads = vmap(grad(one_task), in_dims=(None, 0, 0))(fast, xs, ys)
    return {k: v - step_size[k] * (grads[k].detach() if first_order else grads[k]) for k, v in fast.items()}


def _adapted(model: nn.Module, params: Params, x_support: Tensor, y_support: Tensor, *,
             n_tasks: int | None = None, **inner) -> tuple[Params, Params]:
    """(frozen, adapted subset) after the last inner step."""
    frozen, trajectory = _inner_loop(model, params, x_support, y_support, n_tasks=n_tasks, **inner)
    for fast in trajectory:
        pass
    return frozen, fast


def adapt(model: nn.Module, params: Params, x_support: Tensor, y_support: Tensor, *,
          loss_fn: LossFn, steps: int, lr: float | Tensor, first_order: bool = False,
          adapt_keys: Collection[str] | None = None,
          per_param_lr: Mapping[str, Tensor] | None = None) -> Params:
    """Adapt `params` to one task by `steps` SGD steps on its support set.

    Returns a new dict with every parameter name; those outside `adapt_keys` are the given
    tensors. Second order by default (the steps stay on the graph, MAML); `first_order=True`
    detaches each inner gradient (FOMAML). With `per_param_lr` (Meta-SGD) those names step
    by their own learned rate and `lr` serves the rest. The given tensors are never modified.
    """
    frozen, fast = _adapted(model, params, x_support, y_support, loss_fn=loss_fn, steps=steps, lr=lr,
                            first_order=first_order, adapt_keys=adapt_keys, per_param_lr=per_param_lr)
    return {**frozen, **fast}


def adapt_online(model: nn.Module, params: Params, xs: Iterable[Tensor], ys: Iterable[Tensor], *,
                 loss_fn: LossFn, lr: float | Tensor, first_order: bool = False,
                 adapt_keys: Collection[str] | None = None,
                 per_param_lr: Mapping[str, Tensor] | None = None) -> Params:
    """One SGD step on each batch `(xs[i], ys[i])` in turn: an inner loop over a stream, not a support set.

    The online inner loop of the continual meta-learners (OML, ANML, La-MAML): where `adapt`
    steps `steps` times on one support set, this steps once on each successive batch of a
    trajectory (batches may differ in size). Same conventions as `adapt`: second order unless
    `first_order`, `adapt_keys` and `per_param_lr` as there, the given tensors are never modified.
    """
    fast, frozen = _split(params, adapt_keys)
    step_size = _step_sizes(fast, lr, per_param_lr)
    track = torch.is_grad_enabled()
    for x, y in zip(xs, ys):
        grads = _gradient(_loss_of(model, frozen, x, y, loss_fn, batched=False), fast, track=track,
                          create_graph=track and not first_order)
        fast = {k: fast[k] - step_size[k] * grads[k] for k in fast}
    return {**frozen, **fast}


def adapt_many(model: nn.Module, params: Params, xs: Tensor, ys: Tensor, *, loss_fn: LossFn,
               steps: int, lr: float | Tensor, first_order: bool = False,
               adapt_keys: Collection[str] | None = None,
               per_param_lr: Mapping[str, Tensor] | None = None) -> Params:
    """`adapt` for many tasks at once, batched over the leading task dimension of `xs`, `ys`.

    Support sets must share one shape. Every returned tensor has that task dimension first,
    also the non-adapted ones (an expanded view, no copy).
    """
    frozen, fast = _adapted(model, params, xs, ys, n_tasks=len(xs), loss_fn=loss_fn, steps=steps, lr=lr,
                            first_order=first_order, adapt_keys=adapt_keys, per_param_lr=per_param_lr)
    return {**{k: v.expand(len(xs), *v.shape) for k, v in frozen.items()}, **fast}


def adapt_many_sequential(model: nn.Module, params: Params, xs: Tensor, ys: Tensor, *,
                          loss_fn: LossFn, steps: int, lr: float | Tensor,
                          first_order: bool = False, adapt_keys: Collection[str] | None = None,
                          per_param_lr: Mapping[str, Tensor] | None = None) -> Params:
    """Same result as `adapt_many`, one task at a time: for models vmap cannot batch."""
    per_task = [adapt(model, params, x, y, loss_fn=loss_fn, steps=steps, lr=lr,
                      first_order=first_order, adapt_keys=adapt_keys, per_param_lr=per_param_lr)
                for x, y in zip(xs, ys)]
    return {k: torch.stack([adapted[k] for adapted in per_task]) for k in params}


def query_loss_many(model: nn.Module, adapted_params_batched: Params, xq: Tensor, yq: Tensor,
                    loss_fn: LossFn) -> Tensor:
    """Per-task query losses, shape (n_tasks,), for parameters batched as `adapt_many` gives."""
    assert_vmap_safe(model)
    return _loss_of(model, {}, xq, yq, loss_fn, batched=True)(adapted_params_batched)


def meta_loss(model: nn.Module, params: Params, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor,
              *, loss_fn: LossFn, steps: int, lr: float | Tensor, first_order: bool = False,
              adapt_keys: Collection[str] | None = None,
              per_param_lr: Mapping[str, Tensor] | None = None,
              vectorize: bool = True) -> Tensor:
    """Mean over tasks of the query loss after adapting on the support set (a scalar).

    Backpropagate it to reach `params` (and `per_param_lr`, and `lr` if it is a tensor).
    `vectorize=False` loops over tasks in Python instead of batching them, with the same result.
    """
    inner = {"loss_fn": loss_fn, "steps": steps, "lr": lr, "first_order": first_order,
             "adapt_keys": adapt_keys, "per_param_lr": per_param_lr}
    if vectorize:
        frozen, fast = _adapted(model, params, xs, ys, n_tasks=len(xs), **inner)
        return _loss_of(model, frozen, xq, yq, loss_fn, batched=True)(fast).mean()
    losses = []
    for task in zip(xs, ys, xq, yq):
        frozen, fast = _adapted(model, params, *task[:2], **inner)
        losses.append(_loss_of(model, frozen, *task[2:], loss_fn, batched=False)(fast))
    return torch.stack(losses).mean()


def _curve(model: nn.Module, params: Params, x_support: Tensor, y_support: Tensor,
           x_eval: Tensor, y_eval: Tensor, *, score_fn: LossFn, n_tasks: int | None = None,
           **inner) -> Tensor:
    """Scores on (x_eval, y_eval) along a first-order trajectory, with no graph recorded.

    Shape (steps + 1, ...) for one task; (n_tasks, steps + 1, ...) for stacked tasks.
    """
    with torch.no_grad():
        frozen, trajectory = _inner_loop(model, params, x_support, y_support, first_order=True,
                                         n_tasks=n_tasks, **inner)
        score_of = _loss_of(model, frozen, x_eval, y_eval, score_fn, batched=n_tasks is not None)
        return torch.stack([score_of(fast) for fast in trajectory], dim=0 if n_tasks is None else 1)


def adapt_curve(model: nn.Module, params: Params, x_support: Tensor, y_support: Tensor,
                x_eval: Tensor, y_eval: Tensor, *, loss_fn: LossFn, score_fn: LossFn,
                steps: int, lr: float | Tensor, adapt_keys: Collection[str] | None = None,
                per_param_lr: Mapping[str, Tensor] | None = None) -> Tensor:
    """The adaptation curve of one task: shape (steps + 1,), entry i after i inner steps.

    Entry i is `score_fn(predictions, y_eval)` (a scalar tensor; accuracy, MSE, ...). For
    evaluation: it steps first-order under `torch.no_grad()`, so it records no graph (not
    even toward `per_param_lr`) and returns new tensors without touching the given ones.
    """
    return _curve(model, params, x_support, y_support, x_eval, y_eval, score_fn=score_fn,
                  loss_fn=loss_fn, steps=steps, lr=lr, adapt_keys=adapt_keys,
                  per_param_lr=per_param_lr)


def adapt_curve_many(model: nn.Module, params: Params, xs: Tensor, ys: Tensor,
                     x_eval: Tensor, y_eval: Tensor, *, loss_fn: LossFn, score_fn: LossFn,
                     steps: int, lr: float | Tensor, adapt_keys: Collection[str] | None = None,
                     per_param_lr: Mapping[str, Tensor] | None = None) -> Tensor:
    """`adapt_curve` batched over a leading task dimension: shape (n_tasks, steps + 1)."""
    return _curve(model, params, xs, ys, x_eval, y_eval, score_fn=score_fn, n_tasks=len(xs),
                  loss_fn=loss_fn, steps=steps, lr=lr, adapt_keys=adapt_keys,
                  per_param_lr=per_param_lr)
