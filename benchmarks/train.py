"""Training and scoring throughput: BEAD's engine against a bare PyTorch loop, side by side.

For each model (the default ``Planar_ConvVAE`` with ``VAEFlowLoss`` on jets, and the
``MAF_Density`` flow on event + jet features) and each batch size, one epoch of
``Trainer.train_epoch`` (shuffle, batching by index, autocast context, objective step, backward,
clipping, optimizer step, the epoch sums and their means) alternates with one epoch of a plain
loop written here: the same model and weights, the same data, batch size, optimizer (AdamW) and
clipping, the same objective for the loss, and nothing else. The fastest of ``--repeat`` epochs
of each counts, so other jobs on the machine weigh on both alike; the ratio is the engine's
events/s over the bare loop's (goal: >= 0.95 on CPU). On the CPU the clock is this process's
CPU time (one thread by default), which other jobs on a shared machine disturb far less than
wall time. ``detect``'s scoring loop
(``score_events``) is timed the same way against a bare ``no_grad`` loop at large batch.

    python benchmarks/train.py                       # 32,768 events, batches 256 ... 8192
    python benchmarks/train.py --events 65536 --repeat 5 --threads 2 --device cuda
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial

import torch

from bead.config import Config
from bead.levels import LevelLayout, parse_levels
from bead.models.batch import Batch, Level
from bead.training.inputs import InMemoryInputs
from bead.training.runtime import Runtime
from bead.training.trainer import Trainer

CASES = (("Planar_ConvVAE", "VAEFlowLoss", "jet"), ("MAF_Density", "FlowNLLLoss", "event+jet"))
BATCHES = (256, 1024, 4096, 8192)
# Prepared-input sizes of the default config (input_features = "all", two jets).
SHAPES = {"event": (1, 17), "jet": (2, 13), "constituent": (30, 12)}


def synthetic(levels: tuple[str, ...], n: int, device: torch.device, seed: int = 0) -> Batch:
    """Normalised-looking inputs with the prepared shapes; jets padded as real samples are."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for level in levels:
        slots, features = SHAPES[level]
        x = torch.randn(n, slots, features, generator=gen)
        mask = torch.ones(n, slots, dtype=torch.bool)
        if level != "event":
            mask[:, 1:] = torch.rand(n, slots - 1, generator=gen) < 0.9
        out[level] = Level(x * mask.unsqueeze(-1), mask)
    return Batch(out, torch.ones(n), torch.randint(0, 3, (n,), generator=gen),
                 torch.arange(n)).to(device)


def layout_of(levels: tuple[str, ...]) -> dict[str, LevelLayout]:
    return {lv: LevelLayout(SHAPES[lv][0], tuple(f"f{i}" for i in range(SHAPES[lv][1])))
            for lv in levels}


def bare_epoch(model: torch.nn.Module, objective, optimizer: torch.optim.Optimizer, data: Batch,
               batch_size: int, clip: float, seed: int) -> None:
    """What a physicist would write by hand: shuffle, slice, step."""
    model.train()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    order = order.to(data.weight.device)
    for idx in torch.tensor_split(order, math.ceil(len(data) / batch_size)):
        batch = data.select(idx)
        loss = objective.step(model, batch).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()


def bare_scores(model: torch.nn.Module, objective, data: Batch, batch_size: int) -> None:
    model.eval()
    with torch.no_grad():
        for idx in torch.tensor_split(torch.arange(len(data)), math.ceil(len(data) / batch_size)):
            result = objective.step(model, data.select(idx).to(data.weight.device))
            for values in result.components.values():
                values.float().cpu().numpy()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds of ``fn``: CPU seconds of this process on the CPU (far steadier than wall time
    when other jobs share the cores), wall seconds on a GPU."""
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    sync(device)
    start = clock()
    fn()
    sync(device)
    return clock() - start


def bench_training(model_name: str, loss: str, levels_text: str, n: int, repeat: int,
                   device: torch.device, amp: torch.dtype | None) -> None:
    from bead.evaluation.detect import score_events

    levels = parse_levels(levels_text)
    data = synthetic(levels, n, device)
    val = synthetic(levels, 1024, device, seed=1)
    runtime = Runtime(device, amp_dtype=amp)
    print(f"\n{model_name} + {loss} ({levels_text}), {n:,} events, {device}"
          f"{f', autocast {amp}' if amp else ''}")
    print(f"{'batch':>6} {'engine ev/s':>12} {'bare ev/s':>12} {'ratio':>6}")
    for batch_size in BATCHES:
        config = Config(model_name=model_name, loss_function=loss, input_level=levels_text,
                        batch_size=batch_size, device=device.type, lr=1e-4)
        torch.manual_seed(0)
        trainer = Trainer(config, runtime, InMemoryInputs(data, val, runtime), layout_of(levels),
                          "bench")
        bare = trainer.spec.build().to(device)
        bare.load_state_dict(trainer.model.state_dict())
        objective = trainer.spec.objective()
        optimizer = torch.optim.AdamW(bare.parameters(), lr=config.lr)
        engine_s, bare_s = math.inf, math.inf
        for r in range(repeat):
            trainer.epoch = r + 1
            engine_s = min(engine_s, timed(trainer.train_epoch, device))
            bare_s = min(bare_s, timed(partial(bare_epoch, bare, objective, optimizer, data,
                                               batch_size, config.gradient_clip, r), device))
        print(f"{batch_size:>6} {n / engine_s:>12,.0f} {n / bare_s:>12,.0f} "
              f"{bare_s / engine_s:>6.3f}")
    model = trainer.model.eval()
    engine_s, bare_s = math.inf, math.inf
    cpu_data = data.to(torch.device("cpu"))  # detect keeps samples on the CPU
    for _ in range(repeat):
        engine_s = min(engine_s, timed(lambda: score_events(
            model, objective, cpu_data, runtime, batch_size=8192), device))
        bare_s = min(bare_s, timed(lambda: bare_scores(model, objective, cpu_data, 8192),
                                   device))
    print(f"detect (score_events, batch 8192): {n / engine_s:,.0f} events/s; bare no_grad "
          f"loop {n / bare_s:,.0f} events/s; ratio {bare_s / engine_s:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=32768)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: steadiest on a shared machine)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    device = torch.device(args.device)
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), best of {args.repeat}")
    for case in CASES:
        bench_training(*case, n=args.events, repeat=args.repeat, device=device, amp=amp)


if __name__ == "__main__":
    main()
