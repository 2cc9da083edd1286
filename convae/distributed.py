"""Training on several processes: PyTorch DistributedDataParallel, started by torchrun.

``torchrun --nproc-per-node N -m convae train ...`` starts N copies of the command line;
each finds its rank in the environment torchrun sets, joins the process group here
(gloo on CPU, NCCL on CUDA) and calls ``fit(..., team=team)``: every rank walks the
same epoch order and trains on its share of every batch, DDP averages the gradients,
so all ranks hold the same weights after every step. Rank 0 alone prints progress,
scores the final model and writes the checkpoint. ``python -m convae train --workers N``
starts the same N processes through ``torch.distributed.run`` (torchrun's own code) on
this machine and turns a failed worker into one line. Past one machine, torchrun's own
flags do it (README, "Training on more cores, GPUs or machines").

Nothing here launches, reduces or synchronises by hand: that is torchrun's and DDP's
job. What is here: the team a process belongs to, its share of a batch, the one
collective sum the loop needs per step (loss and a stop request), and the launcher's
failure report.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

# Set for the workers that ``--workers N`` starts: they leave the error report to the
# launcher, which names the worker that failed first in one line.
LAUNCHED_ENV = "CONVAE_LAUNCHED_WORKERS"
# Exit status of a worker that stopped because another one failed (a collective call
# lost its partner): a consequence, so the launcher looks for the cause elsewhere.
LOST_PARTNER_STATUS = 3


@dataclass(frozen=True)
class Team:
    """This process's place in a data-parallel training run.

    Attributes:
        rank: 0..world-1 over all machines; rank 0 reports and writes.
        world: number of processes training together.
        local_rank: index among the processes on this machine (its GPU, on CUDA).
        local_world: processes on this machine (they share its cores).
        device: where this rank trains (``cuda:<local_rank>`` or the CPU).
    """

    rank: int
    world: int
    local_rank: int
    local_world: int
    device: torch.device

    def share(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's images of a batch of indices: every world-th, from its rank on.

        The shares of all ranks are disjoint and cover the batch; they differ in size by
        at most one (a share of an epoch's short last batch may be empty).
        """
        return batch[self.rank :: self.world]

    def generator(self, seed: int) -> torch.Generator:
        """A CPU generator for this rank's noise and corruption draws: the same for the
        same seed and rank, independent between ranks (numpy's SeedSequence mixing)."""
        mixed = int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])
        return torch.Generator().manual_seed(mixed)

    def sum(self, *values: float) -> list[float]:
        """The sums of ``values`` over all ranks (every rank gets them), one collective."""
        comm = self.device if self.device.type == "cuda" else torch.device("cpu")
        t = torch.tensor(values, dtype=torch.float64, device=comm)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        dist.barrier()

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` under DistributedDataParallel: its backward averages the gradients
        of all ranks, and its start copies rank 0's weights to every rank."""
        on_gpu = self.device.type == "cuda"
        return nn.parallel.DistributedDataParallel(
            module, device_ids=[self.device.index] if on_gpu else None
        )


def env_world() -> int:
    """The number of processes torchrun started for this run (1 when not under torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def join(device: str = "auto", timeout_s: float | None = None) -> Team:
    """Join the process group torchrun's environment describes (call once per process).

    Args:
        device: "auto" (CUDA when this machine has a GPU), "cpu" or "cuda".
        timeout_s: how long a collective call waits for the others before it fails
            (None: torch's default, 30 minutes for gloo).

    Returns:
        This process's :class:`Team`; call :func:`leave` when done.

    Raises:
        ValueError: CUDA asked for but fewer GPUs than processes on this machine.
    """
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "cuda" and gpus < local_world:
        raise ValueError(
            f"device 'cuda' with {local_world} processes on this machine needs {local_world} "
            f"GPUs, found {gpus}: start fewer processes or use --device cpu"
        )
    if device == "auto" and 0 < gpus < local_world:
        raise ValueError(
            f"{local_world} processes on this machine but {gpus} GPU(s): start one process "
            "per GPU, or use --device cpu to train on the CPU cores"
        )
    on_gpu = device == "cuda" or (device == "auto" and gpus > 0)
    if on_gpu:
        torch.cuda.set_device(local_rank)
    dev = torch.device("cuda", local_rank) if on_gpu else torch.device("cpu")
    # NCCL moves CUDA tensors GPU to GPU; gloo is PyTorch's CPU backend.
    dist.init_process_group(
        "nccl" if on_gpu else "gloo",
        device_id=dev if on_gpu else None,
        timeout=datetime.timedelta(seconds=timeout_s) if timeout_s else None,
    )
    return Team(rank, world, local_rank, local_world, dev)


def leave(team: Team | None) -> None:
    """Leave the process group (the last thing a rank does with it)."""
    if team is not None and dist.is_initialized():
        dist.destroy_process_group()


def finish_rank(code: int) -> NoReturn:
    """A rank's last act, once every rank has passed the run's final barrier or its
    partner is gone: end the process at once with ``code``, leaving the sockets to the
    operating system.

    Tearing gloo down on the way out (destroy_process_group, or the interpreter's
    shutdown) while the other rank tore down its side aborted a worker now and then, after
    a run that had succeeded: C++ printed "terminate called without an active exception"
    and the worker died by SIGABRT, so the run failed (CI, 2026-12-06; before that, the
    final barrier made it rarer). Nothing is left to do by then: rank 0 has written its
    checkpoint (atomically, fsynced) before the barrier.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ------------------------------------------------------------------ launching


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables (the workers inherit them) and restore them after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet_agent() -> Iterator[None]:
    """Silence torchrun's agent logging (its warnings and its failure table, several
    lines per worker); the launcher reports a failure in one line instead."""
    loggers = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("torch.distributed")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def launch(workers: int, argv: list[str], out: Path, threads: int | None = None) -> int:
    """Run ``python -m convae <argv>`` as ``workers`` processes through torchrun's engine
    (``torch.distributed.run`` with ``--standalone``: a rendezvous on a free local port).

    Args:
        workers: processes to start on this machine (>= 2).
        argv: the command line each worker runs, ``--workers N`` included (a worker
            under torchrun checks that it matches its world size).
        out: the checkpoint rank 0 writes, to say in a failure whether it changed.
        threads: intra-op threads per worker (None: the cores shared out evenly).

    Returns:
        The exit status: 0 when every worker finished; 2 with one line on stderr when a
        worker failed (the first failure is named; the others were stopped by torchrun);
        130 when interrupted.
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    per_worker = threads or max(1, (os.cpu_count() or 1) // workers)
    before = _file_state(out)
    with tempfile.TemporaryDirectory(prefix="convae-workers-") as logs:
        args = torchrun.parse_args(
            [
                "--standalone",
                f"--nproc-per-node={workers}",
                "--max-restarts=0",  # a failed worker ends the run: nothing to resume from
                f"--log-dir={logs}",  # torchrun's per-worker error files, removed after
                "-m",
                "convae",
                *argv,
            ]
        )
        # OMP_NUM_THREADS set here keeps torchrun from printing its default-1 banner; the
        # workers set their torch threads from it (configure_threads).
        env = {"OMP_NUM_THREADS": str(per_worker), LAUNCHED_ENV: "1"}
        try:
            with _environment(**env), _quiet_agent():
                torchrun.run(args)
        except ChildFailedError as exc:
            print(f"error: {_failure_line(exc, workers, out, before)}", file=sys.stderr)
            return 2
        except (KeyboardInterrupt, SignalException):
            print("\ninterrupted: the workers were stopped, no checkpoint written", file=sys.stderr)
            return 130
    return 0


def record_error(message: str) -> bool:
    """In a worker torchrun started, leave ``message`` in the error file torchrun gave it
    (read back by the launcher as the failure's message). False when there is none."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return False
    try:
        with open(path, "w") as f:
            json.dump({"message": message, "timestamp": int(time.time())}, f)
    except OSError:
        return False
    return True


def _failure_line(exc: Exception, workers: int, out: Path, before: tuple | None) -> str:
    """One line for a failed run: the worker that failed first and what became of --out."""
    failures = exc.failures  # rank -> ProcessFailure (exitcode < 0: killed by -exitcode)
    # Workers that torchrun stopped itself (SIGTERM) or that lost their partner are
    # consequences; the cause is another one. A worker killed by any other signal
    # (SIGKILL, SIGSEGV, ...) cannot be a consequence, while one that raised can be one
    # its error handling did not recognise (a lost connection surfacing as a plain
    # RuntimeError): the killed one is the cause. Timestamps are whole seconds (a killed
    # worker's is when torchrun saw it), so they rank the failures only among their kind.
    # SIGABRT is what a gloo worker dies of when its peer vanishes under a C++ thread
    # that is still running: a consequence too, unless nothing else is there.
    consequences = (LOST_PARTNER_STATUS, -signal.SIGTERM.value)
    aborted = -signal.SIGABRT.value
    causes = (
        {
            r: f
            for r, f in failures.items()
            if f.exitcode < 0 and f.exitcode not in (*consequences, aborted)
        }
        or {r: f for r, f in failures.items() if f.exitcode == aborted}
        or {r: f for r, f in failures.items() if f.exitcode not in consequences}
        or failures
    )
    rank = min(causes, key=lambda r: (causes[r].timestamp, r))
    f = causes[rank]
    if f.exitcode < 0:
        how = f"was killed by {f.signal_name()}"
    elif isinstance(f.error_file_data.get("message"), str) and os.path.exists(f.error_file):
        how = f"failed: {f.message}"
    else:
        how = f"exited with status {f.exitcode}"
    after = _file_state(out)
    if after == before:
        kept = f"{out} is untouched" if before else f"no checkpoint was written to {out}"
    else:
        kept = f"rank 0 had already written {out}"
    return f"training worker {rank} of {workers} {how}; the run was stopped and {kept}"
