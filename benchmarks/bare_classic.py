"""Bare PyTorch loops for the classic baselines (si, lwf, agem, gem, der, icarl): the algorithms of
`lifelong.strategies.<name>` with the same defaults, written without the engine, so that the speed
table (benchmarks/bench_methods.py) can show the engine's overhead per method.

    from bare_classic import BARE
    BARE["si"](tasks, model, lr=0.01, batch_size=32, seed=0)

`tasks`: list of (x_train, y_train, x_test, y_test) tensors of a class-incremental stream (one
shared head, no task labels); `model`: a fresh nn.Module whose last nn.Linear is the output
layer; one epoch per task, plain SGD. The seed formula is the engine's (lifelong.seeding), written
out so that nothing here imports `lifelong`: shuffles and buffer draws are the engine's.
Check that each loop runs: `python benchmarks/bare_classic.py` (a tiny random stream).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PURPOSE = {"shuffle": 3, "buffer": 4}


def derive_seed(seed: int, purpose: str, *index: int) -> int:
    state = np.random.SeedSequence([seed, PURPOSE[purpose], *index]).generate_state(2, np.uint64)[0]
    return int(state >> np.uint64(1))


def batches(n: int, batch_size: int, seed: int, t: int):
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, "shuffle", t))).split(batch_size)


def draws(seed: int, t: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, "buffer", t, 1))


def reservoir(seen: int, count: int, capacity: int, rng) -> np.ndarray:
    slots = seen + np.arange(count)
    late = slots >= capacity
    slots[late] = rng.integers(0, slots[late] + 1)
    return slots


def staying(slots: np.ndarray, capacity: int) -> np.ndarray:
    """Arrivals kept in the buffer and not overwritten by a later arrival of the same write."""
    last = len(slots) - 1 - np.unique(slots[::-1], return_index=True)[1]
    return last[slots[last] < capacity]


def step(opt, loss) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


# --------------------------------------------------------------------------- regularisation

def bare_si(tasks, model, lr, batch_size, seed, c=0.1, xi=1e-3) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    params = list(model.parameters())
    importance = anchor = None
    for t, (x, y, _, _) in enumerate(tasks):
        start = [p.detach().clone() for p in params]
        omega = [torch.zeros_like(p) for p in params]
        before, last = [p.detach().clone() for p in params], [torch.zeros_like(p) for p in params]
        for idx in batches(len(x), batch_size, seed, t):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with torch.no_grad():
                now, grads = [p.detach() for p in params], [p.grad for p in params]
                torch._foreach_addcmul_(omega, last, torch._foreach_sub(now, before), value=-1)
                torch._foreach_copy_(before, now)
                torch._foreach_copy_(last, grads)
                if importance is not None:
                    diff = torch._foreach_sub(now, anchor)
                    torch._foreach_add_(grads, torch._foreach_mul(diff, importance), alpha=2 * c)
            opt.step()
        with torch.no_grad():
            now = [p.detach() for p in params]
            torch._foreach_addcmul_(omega, last, torch._foreach_sub(now, before), value=-1)
            change = torch._foreach_sub(now, start)
            gained = [o / (d * d + xi) for o, d in zip(omega, change)]
            importance = gained if importance is None else [a + b for a, b in zip(importance, gained)]
            anchor = [p.clone() for p in now]


def bare_lwf(tasks, model, lr, batch_size, seed, alpha=1.0, temperature=2.0) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    old: list[int] = []
    for t, (x, y, _, _) in enumerate(tasks):
        if old:
            with torch.no_grad():
                model.eval()
                recorded = F.softmax(model(x)[:, old] / temperature, dim=1)
            model.train()
        for idx in batches(len(x), batch_size, seed, t):
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx])
            if old:
                log_q = F.log_softmax(out[:, old] / temperature, dim=1)
                loss = loss + alpha * -(recorded[idx] * log_q).sum(1).mean()
            step(opt, loss)
        old = sorted({*old, *y.unique().tolist()})


# --------------------------------------------------------------------------- episodic memories

def bare_agem(tasks, model, lr, batch_size, seed, buffer_size=200, memory_batch_size=64) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    params = list(model.parameters())
    mem_x = mem_y = None
    seen = 0
    for t, (x, y, _, _) in enumerate(tasks):
        draw = draws(seed, t)
        for idx in batches(len(x), batch_size, seed, t):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if mem_x is not None:
                pick = torch.randint(min(seen, buffer_size), (memory_batch_size,), generator=draw)
                reference = torch.autograd.grad(F.cross_entropy(model(mem_x[pick]), mem_y[pick]), params)
                with torch.no_grad():
                    grads = [p.grad for p in params]
                    dot = sum(torch.dot(g.reshape(-1), r.reshape(-1)) for g, r in zip(grads, reference))
                    norm = sum(torch.dot(r.reshape(-1), r.reshape(-1)) for r in reference)
                    torch._foreach_sub_(grads, torch._foreach_mul(reference, dot.clamp(max=0) / norm))
            opt.step()
        rng = np.random.default_rng(derive_seed(seed, "buffer", t))
        order = rng.permutation(len(x))
        slots = reservoir(seen, len(order), buffer_size, rng)
        seen += len(order)
        if mem_x is None:
            mem_x, mem_y = x.new_zeros((buffer_size, *x.shape[1:])), y.new_zeros(buffer_size)
        stay = staying(slots, buffer_size)
        mem_x[slots[stay]], mem_y[slots[stay]] = x[order[stay]], y[order[stay]]


def bare_gem(tasks, model, lr, batch_size, seed, memory_per_task=256, margin=0.5, eps=1e-3) -> None:
    import quadprog
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    params = list(model.parameters())
    memories: list[tuple[torch.Tensor, torch.Tensor]] = []
    for t, (x, y, _, _) in enumerate(tasks):
        for idx in batches(len(x), batch_size, seed, t):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if memories:
                G = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(
                    F.cross_entropy(model(mx), my), params)]) for mx, my in memories])
                with torch.no_grad():
                    g = torch.cat([p.grad.reshape(-1) for p in params])
                    if (G @ g < 0).any():
                        M, v = G.double().numpy(), g.double().numpy()
                        P = M @ M.T
                        P = 0.5 * (P + P.T) + eps * np.eye(len(M))
                        dual = quadprog.solve_qp(P, -(M @ v), np.eye(len(M)), np.full(len(M), margin))[0]
                        new = torch.from_numpy(dual @ M + v).float()
                        for p, part in zip(params, new.split([p.numel() for p in params])):
                            p.grad.copy_(part.view_as(p))
            opt.step()
        keep = torch.from_numpy(np.random.default_rng(derive_seed(seed, "buffer", t)).permutation(len(x))[:memory_per_task])
        memories.append((x[keep], y[keep]))


def bare_der(tasks, model, lr, batch_size, seed, buffer_size=200, alpha=0.1, beta=0.5) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    n_outputs = [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features
    buf_x = buf_y = buf_z = None
    seen = 0
    for t, (x, y, _, _) in enumerate(tasks):
        rng = np.random.default_rng(derive_seed(seed, "buffer", t))
        slots = reservoir(seen, len(x), buffer_size, rng)
        draw = draws(seed, t)
        for b, idx in enumerate(batches(len(x), batch_size, seed, t)):
            n = len(idx)
            filled = min(seen, buffer_size)
            if filled == 0:
                out = model(x[idx])
                loss = F.cross_entropy(out, y[idx])
            else:
                p1 = torch.randint(filled, (batch_size,), generator=draw)
                p2 = torch.randint(filled, (batch_size,), generator=draw)
                out = model(torch.cat([x[idx], buf_x[p1], buf_x[p2]]))
                loss = (F.cross_entropy(out[:n], y[idx]) + alpha * F.mse_loss(out[n:n + batch_size], buf_z[p1])
                        + beta * F.cross_entropy(out[n + batch_size:], buf_y[p2]))
            step(opt, loss)
            if buf_x is None:
                buf_x, buf_y = x.new_zeros((buffer_size, *x.shape[1:])), y.new_zeros(buffer_size)
                buf_z = x.new_zeros((buffer_size, n_outputs))
            batch_slots = slots[b * batch_size: b * batch_size + n]
            rows = torch.from_numpy(staying(batch_slots, buffer_size))
            where = torch.from_numpy(batch_slots)[rows]
            buf_x[where], buf_y[where], buf_z[where] = x[idx[rows]], y[idx[rows]], out[:n].detach()[rows]
            seen += n


def bare_icarl(tasks, model, lr, batch_size, seed, memory_size=200) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]

    def features(inputs):
        found = []
        hook = last.register_forward_hook(lambda module, args, output: found.append(args[0]))
        with torch.no_grad():
            model.eval()
            model(inputs)
        hook.remove()
        return F.normalize(found[0], dim=1)

    ex_x, ex_y, ex_rank = tasks[0][0][:0], tasks[0][1][:0], torch.zeros(0, dtype=torch.long)
    seen: list[int] = []
    for t, (x, y, _, _) in enumerate(tasks):
        ux, uy = torch.cat([x, ex_x]), torch.cat([y, ex_y])
        old, new = list(seen), sorted(set(y.tolist()) - set(seen))
        seen += new
        columns = torch.tensor(seen)
        targets = (uy.unsqueeze(1) == columns).float()
        if old:
            with torch.no_grad():
                model.eval()
                targets[:, :len(old)] = torch.sigmoid(model(ux)[:, old])
        model.train()
        for idx in batches(len(ux), batch_size, seed, t):
            loss = F.binary_cross_entropy_with_logits(model(ux[idx])[:, columns], targets[idx],
                                                      reduction="none").sum(1).mean()
            step(opt, loss)
        m = memory_size // len(seen)
        keep = ex_rank < m
        parts = [(ex_x[keep], ex_y[keep], ex_rank[keep])]
        for c in new:  # herding
            xc = x[y == c]
            phi = features(xc)
            target, total, taken, chosen = phi.mean(0), torch.zeros(phi.shape[1]), torch.zeros(len(phi), dtype=torch.bool), []
            for k in range(1, min(m, len(phi)) + 1):
                pick = ((target - (total + phi) / k) ** 2).sum(1).masked_fill(taken, float("inf")).argmin()
                chosen.append(pick)
                taken[pick] = True
                total += phi[pick]
            order = torch.stack(chosen)
            parts.append((xc[order], torch.full((len(order),), c), torch.arange(len(order))))
        ex_x, ex_y, ex_rank = (torch.cat(p) for p in zip(*parts))
        phi = features(ex_x)
        onehot = (ex_y.unsqueeze(0) == columns.unsqueeze(1)).float()
        model.means = F.normalize(onehot @ phi / onehot.sum(1, keepdim=True), dim=1)  # nearest-mean classifier


BARE = {"si": bare_si, "lwf": bare_lwf, "agem": bare_agem, "gem": bare_gem, "der": bare_der, "icarl": bare_icarl}


if __name__ == "__main__":  # every loop runs on a tiny random class-incremental stream
    import time
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    tiny = []
    for t in range(3):
        y = torch.arange(2 * t, 2 * t + 2).repeat(40)
        tiny.append((torch.randn(80, 16, generator=g) + y.unsqueeze(1), y, torch.randn(20, 16), y[:20]))
    for name, loop in BARE.items():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 6))
        start = time.perf_counter()
        loop(tiny, net, 0.05, 16, 0, **({"memory_per_task": 20} if name == "gem" else {}))
        print(f"{name:6s} ran in {time.perf_counter() - start:.3f}s")
