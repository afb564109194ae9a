"""Avalanche's strategies as Lifelong strategies: `name: avalanche.EWC` in a config.

`strategy_for("EWC")` returns a `Strategy` subclass whose `Params` is Avalanche's constructor
signature (its own settings only: the model, optimiser, loss, batch size, epochs and device come from
Lifelong, so every strategy of a run shares one budget). `learn(task)` is the Avalanche strategy's
`train` on one experience made from the task; Lifelong's evaluator scores the Avalanche model, so the
record, references, flags and report are those of any other strategy. Avalanche's own evaluation
plugin is off (no metrics, no loggers).

Resume: Avalanche keeps its plugins' state (EWC importances, replay buffers, LwF's old model, ...)
in Python objects that a Lifelong checkpoint, which holds tensors only, cannot hold. A resumed
Avalanche strategy is therefore rebuilt by retraining its completed tasks with the same seeds, and
the retrained model must equal the checkpointed one bit for bit; otherwise the resume is refused.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import inspect
import math
import warnings
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from torch import nn

from lifelong.errors import ConfigError, UserError
from lifelong.interop.avalanche import INSTALL_HINT, require
from lifelong.seeding import derive_seed
from lifelong.strategies.base import Strategy, StrategyContext
from lifelong.strategies.registry import AVALANCHE_PREFIX, AVALANCHE_STRATEGIES, UnknownStrategyError
from lifelong.streams.task import Task
from lifelong.training import NonFiniteLossError, make_optimizer, task_loss

# Constructor arguments Lifelong fills in from the config's model, training budget and device.
SET_BY_LIFELONG = frozenset({"model", "feature_extractor", "classifier", "optimizer", "criterion", "train_mb_size",
                             "train_epochs", "eval_mb_size", "device", "plugins", "evaluator", "eval_every",
                             "peval_mode"})
# Defaults for arguments Avalanche requires but a YAML file cannot or need not give (ICaRL's plugin
# defaults: no buffer transform, a fixed memory).
DEFAULTS = {"ICaRL": {"buffer_transform": None, "fixed_memory": True}}
# Packages a strategy needs beyond avalanche-lib's own requirements (GEM's QP solver, through qpsolvers).
NEEDS = {"GEM": "quadprog"}


class AvalancheResumeError(UserError):
    """A checkpointed Avalanche strategy cannot be rebuilt exactly."""


def strategy_for(name: str) -> type[Strategy]:
    """The Lifelong strategy class for `avalanche.<name>` (`name` without the prefix)."""
    if name not in AVALANCHE_STRATEGIES:
        close = difflib.get_close_matches(name, list(AVALANCHE_STRATEGIES), n=3)
        hint = f" Did you mean {', '.join(AVALANCHE_PREFIX + c for c in close)}?" if close else ""
        raise UnknownStrategyError(f"unknown Avalanche strategy {AVALANCHE_PREFIX + name!r}.{hint} Supported: "
                                   f"{', '.join(AVALANCHE_PREFIX + n for n in AVALANCHE_STRATEGIES)}")
    try:
        require(f"strategy {AVALANCHE_PREFIX + name!r}")
    except UserError as missing:
        raise UnknownStrategyError(str(missing)) from None
    return _strategy_class(name)


@functools.cache
def _strategy_class(name: str) -> type[Strategy]:
    import avalanche.training

    template = getattr(avalanche.training, AVALANCHE_STRATEGIES[name])
    return type(f"Avalanche{name}", (AvalancheStrategy,), {
        "__doc__": f"Avalanche's {template.__name__} ({template.__module__}) run by Lifelong.",
        "avalanche_name": name, "template": template, "Params": _params_model(name, template)})


class _AvalancheParams(BaseModel):
    """Params that name Avalanche's accepted arguments when given an unknown one."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    strategy_name: ClassVar[str] = ""

    @model_validator(mode="wrap")
    @classmethod
    def _name_accepted(cls, data, handler):
        try:
            return handler(data)
        except ValidationError as error:
            accepted = ", ".join(cls.model_fields) or "none"
            message = (f"not a parameter of {AVALANCHE_PREFIX}{cls.strategy_name} "
                       f"(accepted: {accepted}; the training budget goes under `training:`)")
            details = [InitErrorDetails(type=PydanticCustomError("extra_forbidden", message), loc=e["loc"],
                                        input=e["input"]) if e["type"] == "extra_forbidden" else e
                       for e in error.errors()]
            raise ValidationError.from_exception_data(cls.__name__, details) from None


def _params_model(name: str, template: type) -> type[BaseModel]:
    """A pydantic model of the constructor's own arguments, typed by its annotations."""
    fields: dict[str, Any] = {}
    for p in inspect.signature(template.__init__).parameters.values():
        if p.name == "self" or p.name in SET_BY_LIFELONG or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = DEFAULTS.get(name, {}).get(p.name, p.default)
        fields[p.name] = (_field_type(p.annotation), ... if default is p.empty else default)
    model = create_model(f"Avalanche{name}Params", __base__=_AvalancheParams, **fields)
    model.strategy_name = name
    return model


def _field_type(annotation):
    """The annotation when pydantic can check it, else Any (Avalanche checks it itself)."""
    if annotation is inspect.Parameter.empty:
        return Any
    try:
        TypeAdapter(annotation)
    except Exception:  # pydantic cannot build a schema for some annotations (modules, callables)
        return Any
    return annotation


class _MaskedCrossEntropy(nn.Module):
    """Lifelong's task loss as Avalanche's criterion: the current task's task-IL logit mask applies."""

    def __init__(self):
        super().__init__()
        self.mask: torch.Tensor | None = None

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return task_loss(outputs, targets, "classification", self.mask)


@functools.cache
def _loss_meter_class() -> type:
    from avalanche.core import SupervisedPlugin

    class LossMeter(SupervisedPlugin):
        """The summed training loss and step count of an experience (summed on the device: no per-step sync)."""

        def before_training_exp(self, strategy, **kwargs):
            self.total, self.steps = 0.0, 0

        def after_training_iteration(self, strategy, **kwargs):
            self.total = self.total + strategy.loss.detach()
            self.steps += 1

    return LossMeter


class AvalancheStrategy(Strategy):
    """An Avalanche `SupervisedTemplate` learning a Lifelong stream one task (experience) at a time."""

    avalanche_name: ClassVar[str]
    template: ClassVar[type]

    def setup(self, ctx: StrategyContext) -> None:
        self._check_can_serve(ctx)
        self.ctx = ctx
        self.criterion = _MaskedCrossEntropy()
        self.loss_meter = _loss_meter_class()()
        self.strategy = self._construct(ctx.new_model())
        self.model, self.optimizer = self.strategy.model, self.strategy.optimizer
        self.learned = 0
        self.classes_learned: list[tuple[int, ...]] = []  # ICaRL's class order

    def _check_can_serve(self, ctx: StrategyContext) -> None:
        needed = NEEDS.get(self.avalanche_name)
        if needed and importlib.util.find_spec(needed) is None:
            raise UserError(f"strategy {AVALANCHE_PREFIX}{self.avalanche_name} needs the package {needed!r}, which "
                            f"is not installed; install it with: {INSTALL_HINT} (the extra includes it)")
        stream = ctx.stream
        if stream.kind != "classification":
            raise ConfigError(f"strategy {AVALANCHE_PREFIX}{self.avalanche_name}: Avalanche's supervised strategies "
                              f"learn classification; stream {stream.name!r} is {stream.kind}")
        if self.avalanche_name == "ICaRL" and stream.scenario != "class-il":
            raise ConfigError(f"strategy {AVALANCHE_PREFIX}ICaRL serves class-incremental streams only (its "
                              f"nearest-mean classifier covers every class seen); stream {stream.name!r} is "
                              f"{stream.scenario}: use a split stream with scenario class-il")

    def _construct(self, model: nn.Module):
        """The Avalanche strategy on Lifelong's model and budget; its constructor's complaints name it."""
        budget = self.ctx.training
        if self.avalanche_name == "ICaRL":
            networks = {"feature_extractor": model[:-1], "classifier": model[-1]}
        else:
            networks = {"model": model, "criterion": self.criterion}
        settings = {**DEFAULTS.get(self.avalanche_name, {}), **self.params.model_dump(exclude_unset=True)}
        try:
            with _quiet():
                return self.template(**networks, **settings, optimizer=make_optimizer(model.parameters(), budget),
                                     train_mb_size=budget.batch_size, train_epochs=budget.epochs,
                                     eval_mb_size=budget.batch_size, device=self.ctx.device,
                                     plugins=[self.loss_meter], evaluator=None, eval_every=-1)
        except (TypeError, ValueError, AssertionError) as error:
            raise ConfigError(f"strategy {AVALANCHE_PREFIX}{self.avalanche_name}: Avalanche rejected params "
                              f"{settings}: {type(error).__name__}: {error}") from error

    def learn(self, task: Task) -> dict:
        self.criterion.mask = self.ctx.mask(task)
        experience = self._experience(task)
        with _seeded(derive_seed(self.ctx.seed, "shuffle", task.id)), _quiet():
            self.strategy.train(experience, eval_streams=[])
        self.learned += 1
        loss = float(self.loss_meter.total) / max(self.loss_meter.steps, 1)
        if not math.isfinite(loss):
            raise NonFiniteLossError(f"training loss on task {task.name!r} became non-finite "
                                     f"(lr={self.ctx.training.lr}); lower `training.lr` or the strategy's weights")
        return {"train_loss": loss}

    def _experience(self, task: Task):
        """Task `task.id` of the stream as an Avalanche experience (CPU tensors: Avalanche's loader moves them)."""
        from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
        from avalanche.benchmarks.scenarios.generic_scenario import EagerCLStream
        from avalanche.benchmarks.utils.classification_dataset import _make_taskaware_tensor_classification_dataset

        y = task.y_train.cpu()
        data = _make_taskaware_tensor_classification_dataset(task.x_train.cpu(), y, targets=y,
                                                             task_labels=task.label or 0)
        experience = DatasetExperience(dataset=data, current_experience=task.id)
        experience.origin_stream = EagerCLStream("train", [experience], set_stream_info=False)
        if self.avalanche_name == "ICaRL":
            experience.benchmark = self._class_order(task)
        return experience

    def _class_order(self, task: Task):
        """What ICaRL reads of an `nc_benchmark`: classes per experience and their order, for the tasks
        learned so far and this one, the classes still unseen lumped into one last entry."""
        from types import SimpleNamespace

        self.classes_learned.append(task.classes)
        order = [c for classes in self.classes_learned for c in classes]
        rest = sorted(set(range(self.ctx.stream.n_outputs)) - set(order))
        counts = [len(classes) for classes in self.classes_learned] + ([len(rest)] if rest else [])
        return SimpleNamespace(n_classes_per_exp=counts, classes_order=order + rest)

    def predictor(self, task: Task, support=None):
        self.model.eval()
        if self.avalanche_name == "ICaRL" and self.learned == 0:
            # the nearest-mean classifier has no class means before the first task: score the linear head
            return nn.Sequential(self.model.feature_extractor, self.model.train_classifier).eval()
        return self.model

    def state_dict(self) -> dict:
        return {"learned": self.learned, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Retrain the completed tasks with their seeds (the plugins' state is not tensors), then
        check the model is the checkpointed one exactly."""
        for index in range(state["learned"]):
            self.learn(self.ctx.stream.tasks[index].to(self.ctx.device))
        saved, rebuilt = state["model"], self.model.state_dict()
        differ = [k for k in saved if k not in rebuilt or not torch.equal(saved[k].to(rebuilt[k].device), rebuilt[k])]
        if differ or set(rebuilt) != set(saved):
            raise AvalancheResumeError(
                f"cannot resume {AVALANCHE_PREFIX}{self.avalanche_name}: Avalanche keeps its plugins' state in "
                "Python objects that Lifelong's checkpoints do not hold, so resuming retrains the "
                f"{state['learned']} completed task(s), and that did not reproduce the checkpointed model "
                f"(differs in {', '.join(differ) or 'its layers'}; a nondeterministic device or a changed "
                "Avalanche). Start the run again with `lifelong run`.")


@contextmanager
def _quiet():
    """Avalanche's notices about its own logging and API plans kept off the console; other warnings
    pass. (Its deprecation decorator re-installs a filter on every call, so they are caught, not filtered.)"""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        noise = "No loggers specified" in str(w.message) or (
            issubclass(w.category, DeprecationWarning) and "/avalanche/" in w.filename.replace("\\", "/"))
        if not noise:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@contextmanager
def _seeded(seed: int):
    """Avalanche's randomness (loader shuffles, buffer sampling: torch, numpy and `random` global
    generators) seeded for one experience, and the generators' earlier state restored after it."""
    from avalanche.training.determinism.rng_manager import RNGManager

    saved = RNGManager.__getstate__()
    RNGManager.set_random_seeds(seed % 2**32)
    try:
        yield
    finally:
        RNGManager.__setstate__(saved)
