"""What synchronising two CPU workers costs a training step (issue #14).

Two processes of one thread each train the transpose model on random uint8 batches (the
data path of ``convae.train.fit``: a gather, ``/ 255``, channels-last) and time bare steps
(forward, MSE, backward, Adam), in four ways, each started afresh, the first way again at
the end to show the drift:

- ``none``: no gradient exchange, each process trains alone (the ceiling);
- ``ddp``: DistributedDataParallel over gloo, as ``--workers 2`` trains;
- ``localsgd-K``: PyTorch's post-local-SGD (gradients stay local, the models are averaged
  every K steps by ``PeriodicModelAverager``), which trains something else than one process
  at the same global batch, so the trainer does not use it.

Prints and writes ms per step (median of 3 timed repeats of 100 steps, after one warm
repeat) to ``bench/results/ddp_step.json``. A benchmark, not a test.

    python bench/ddp_step.py [--batch 16] [--out bench/results/ddp_step.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convae.models import AEConfig, ConvAutoencoder  # noqa: E402

MODES = ("none", "ddp", "localsgd-4", "localsgd-16", "none")
STEPS, REPEATS = 100, 4


def _worker(rank: int, port: int, batch: int, mode: str, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = ConvAutoencoder(AEConfig()).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    net = model
    if mode != "none":
        net = torch.nn.parallel.DistributedDataParallel(model)
    if mode.startswith("localsgd"):
        from torch.distributed.algorithms.ddp_comm_hooks.post_localSGD_hook import (
            PostLocalSGDState,
            post_localSGD_hook,
        )
        from torch.distributed.algorithms.model_averaging.averagers import (
            PeriodicModelAverager,
        )
        from torch.distributed.optim import PostLocalSGDOptimizer

        alone, _ = dist.new_subgroups(group_size=1)  # gradients are not exchanged
        net.register_comm_hook(
            PostLocalSGDState(process_group=None, subgroup=alone, start_localSGD_iter=1),
            post_localSGD_hook,
        )
        period = int(mode.split("-")[1])
        opt = PostLocalSGDOptimizer(opt, PeriodicModelAverager(period=period, warmup_steps=1))
    data = torch.randint(0, 256, (4096, 3, 32, 32), dtype=torch.uint8)
    times = []
    for _ in range(REPEATS):
        dist.barrier()
        t = time.perf_counter()
        for _ in range(STEPS):
            idx = torch.randint(0, len(data), (batch,))
            x = data[idx].float().div_(255).contiguous(memory_format=torch.channels_last)
            loss = F.mse_loss(net(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
        times.append((time.perf_counter() - t) / STEPS * 1000)
    out.put((rank, times[1:]))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16, help="images a worker a step (16)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ddp_step.json")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    load_before = os.getloadavg()
    runs = []
    for mode in MODES:
        q = ctx.Queue()
        port = _free_port()
        procs = [ctx.Process(target=_worker, args=(r, port, args.batch, mode, q)) for r in (0, 1)]
        for p in procs:
            p.start()
        got = dict(q.get() for _ in procs)
        for p in procs:
            p.join()
        ms = statistics.median(got[0])
        runs.append({"mode": mode, "ms_per_step_rank0": got[0], "ms_per_step_rank1": got[1]})
        runs[-1]["median_ms_per_step"] = ms
        print(
            f"{mode:12s} {ms:6.2f} ms a step  "
            f"({2 * args.batch / ms * 1000:,.0f} images/s over both workers)",
            flush=True,
        )
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "batch_per_worker": args.batch,
        "steps_per_repeat": STEPS,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
