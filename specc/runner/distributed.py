"""Data-parallel ``specc train --backend pytorch`` on several processes (torch.distributed).

Two ways in, one code path:

* ``specc train SPEC --backend pytorch --nproc N`` starts N worker processes on this machine
  (:func:`launch`): each re-executes ``python -m specc train ...`` with the standard
  ``RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE / MASTER_ADDR / MASTER_PORT`` set (a
  free port on 127.0.0.1), and the launcher watches them: when one dies, the others are
  stopped and the job ends with exit 3 and a message naming the rank; the last checkpoint
  is intact, so ``--resume`` continues it.
* ``torchrun --nnodes M --nproc-per-node N -m specc train SPEC --backend pytorch ...`` sets
  the same variables; each worker reads them (:func:`environment`) and joins the group.

Process group: ``gloo`` on the CPU, ``nccl`` on CUDA (each rank on the GPU ``LOCAL_RANK``
names), with a timeout on every collective (``SPECC_DIST_TIMEOUT`` seconds, 1800 by default)
so a hung peer ends the job instead of hanging it.

Batches: the global batch is the spec's ``batch_size`` (or ``--batch-size``), exactly the
batches a single process takes from the loop's seeded permutation; rank ``r`` of ``W`` trains
on rows ``[r*n//W, (r+1)*n//W)`` of each batch of ``n`` rows. Its loss is weighted by
``n_r * W / n`` so that DDP's gradient *average* equals the gradient of the mean loss over the
whole batch, also for an uneven last batch; a last batch with fewer rows than ranks is
trained by every rank whole (weight 1), which again gives that gradient. So W processes take
the same optimizer steps as one process, up to float summation order. Dropout masks are
drawn per rank, and batch-norm statistics are per rank (DDP keeps rank 0's running
statistics) unless ``--sync-batchnorm`` computes them over the global batch.

Only rank 0 reads and writes the run folder (checkpoints, best weights, plots, run.json);
it evaluates the validation split and broadcasts the results, so every rank takes the same
early-stopping and learning-rate decisions. On ``--resume`` rank 0 loads the checkpoint and
broadcasts model, optimizer and loop state: the other ranks need no access to the folder.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from .run import RunError

DEFAULT_TIMEOUT_S = 1800.0
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(RunError):
    """A rank lost the others (a peer died or hung past the timeout): exit 3, resumable."""


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def environment(environ=None) -> DistEnv | None:
    """The launch this process belongs to (torchrun's or ``--nproc``'s variables), or None
    for a plain single process. Raises ValueError on inconsistent variables."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return None
    try:
        world = int(environ["WORLD_SIZE"])
        rank = int(environ.get("RANK", "0"))
        local_rank = int(environ.get("LOCAL_RANK", str(rank)))
        local_world = int(environ.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError as exc:
        raise ValueError(f"bad distributed environment variable: {exc}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    if world == 1:
        return None
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if key not in environ:
            raise ValueError(f"WORLD_SIZE={world} is set but {key} is not")
    return DistEnv(rank, world, local_rank, local_world)


def timeout_seconds() -> float:
    try:
        return float(os.environ.get("SPECC_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int, float]:
    """Rows ``[lo, hi)`` of a global batch of ``n`` that ``rank`` trains on, and the weight
    of its mean loss (DDP averages the ranks' gradients)::

        sum_r weight_r / W * grad(mean_r) = sum_r n_r / n * grad(mean_r) = grad(mean over n)
    """
    if n < world:  # every rank takes the whole (last, short) batch: the average is exact
        return 0, n, 1.0
    lo, hi = rank * n // world, (rank + 1) * n // world
    return lo, hi, (hi - lo) * world / n


# --------------------------------------------------------------------------- the launcher


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


LOST_PEER_EXIT = 75
"""How a launched rank that lost contact with the others exits: it tells the launcher that
another rank is the cause (the job itself exits 3)."""

_OWN_EXITS = (0, 1, 2, 3, 130, LOST_PEER_EXIT, None)


def launched_rank() -> bool:
    """Whether this process is a rank that :func:`launch` started."""
    return "SPECC_NPROC" in os.environ and "RANK" in os.environ


def _culprit(codes: list, failed: tuple[int, int]) -> tuple[int, int, int | None]:
    """The rank to blame for a failed job, its exit code, and the job's exit code when the
    ranks' own message already says why (else None: the launcher names the rank).

    In order: a rank killed by a signal or crashed outside specc's exit codes (SIGABRT last:
    it is how a collective library ends a rank whose peer vanished); rank 0 refusing or
    stopping the run (1, 2, 3 or 130, the others fail after it); a rank failing on its own
    (not by losing its peers), the first seen first."""
    crashed = sorted(
        (c == -signal.SIGABRT, r, c) for r, c in enumerate(codes) if c not in _OWN_EXITS
    )
    if crashed:
        return crashed[0][1], crashed[0][2], None
    if codes[0] in (1, 2, 3, 130) or (len(set(codes)) == 1 and codes[0] in (1, 2, 130)):
        return 0, codes[0], codes[0]
    if failed[1] != LOST_PEER_EXIT:
        return failed[0], failed[1], None
    own = next(((r, c) for r, c in enumerate(codes) if c in (1, 2, 3)), None)
    if own is not None:
        return own[0], own[1], None
    return failed[0], failed[1], None  # every failed rank lost its peers (a timeout)


def _describe_exit(code: int) -> str:
    if code == LOST_PEER_EXIT:
        return "lost contact with the other ranks"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def strip_nproc(args: list[str]) -> list[str]:
    """``args`` without ``--nproc N`` / ``--nproc=N`` (the ranks must not launch again)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(args: list[str], nproc: int, *, err=None, grace_s: float = 10.0) -> int:
    """Run ``python -m specc <args>`` as ``nproc`` ranks on this machine; return the exit code.

    Rank 0 writes to this terminal; the other ranks' output goes to temporary files and is
    shown only when that rank fails. When a rank fails, the others are stopped (SIGTERM,
    then SIGKILL after ``grace_s``) and the job exits with that rank's exit code when it is
    one of specc's own (1 invalid spec, 2 usage, 3 run cannot proceed), else 3.

    The ranks run in their own process group, so Ctrl-C reaches the launcher alone; it
    passes the SIGINT on to every rank, and the ranks stop together after the same step,
    rank 0 saving a checkpoint (exit 130, as a single process). A second Ctrl-C is passed
    on as well: the ranks stop at once, the last complete checkpoint stays.
    """
    err = err or sys.stderr
    port = free_port()
    interrupts = [0]
    procs: list[subprocess.Popen] = []

    def forward_interrupt(signum, frame):
        interrupts[0] += 1
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, _terminated)
    previous_int = signal.signal(signal.SIGINT, forward_interrupt)
    logs = tempfile.TemporaryDirectory(prefix="specc-ranks-")
    files = []
    try:
        for rank in range(nproc):
            env = {
                **os.environ,
                "RANK": str(rank),
                "WORLD_SIZE": str(nproc),
                "LOCAL_RANK": str(rank),
                "LOCAL_WORLD_SIZE": str(nproc),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "SPECC_NPROC": str(nproc),  # rank 0's --resume hint repeats --nproc N
            }
            if rank == 0:
                stdout = stderr = None
            else:
                log = open(Path(logs.name) / f"rank{rank}.log", "w+b")  # noqa: SIM115
                files.append(log)
                stdout = stderr = log
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "specc", *args],
                    env=env,
                    stdout=stdout,
                    stderr=stderr,
                    preexec_fn=_die_with_parent,
                    process_group=0,
                )
            )
        failed: tuple[int, int] | None = None
        while failed is None:
            codes = [p.poll() for p in procs]
            if all(c == 0 for c in codes):
                return 0
            if interrupts[0] and all(c is not None for c in codes):
                return 130 if any(c != 0 for c in codes) else 0
            failed = next(((r, c) for r, c in enumerate(codes) if c not in (None, 0)), None)
            if failed is None:
                time.sleep(0.1)
        # a spec or usage error fails every rank the same way, within moments; a rank that
        # died takes the others down with collective errors (exit 3) just after
        deadline = time.time() + 2.0
        while time.time() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.05)
        codes = [p.poll() for p in procs]
        if interrupts[0]:  # Ctrl-C: rank 0 said where its checkpoint is
            while any(p.poll() is None for p in procs) and time.time() < deadline + grace_s:
                time.sleep(0.05)
            _stop(procs, grace_s)
            return 130
        rank, code, own_word = _culprit(codes, failed)
        _stop(procs, grace_s)
        if own_word is not None:
            return own_word
        if rank > 0:
            log = files[rank - 1]
            log.flush()
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-15:]
            for line in tail:
                err.write(f"[rank {rank}] {line}\n")
        err.write(
            f"error: rank {rank} of {nproc} {_describe_exit(code)}; stopped the other ranks. "
            "The run folder keeps its last complete checkpoint: continue with --resume\n"
        )
        err.flush()
        return 3
    except KeyboardInterrupt:
        _stop(procs, grace_s)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        for log in files:
            log.close()
        logs.cleanup()


def _terminated(signum, frame):
    raise KeyboardInterrupt  # SIGTERM to the launcher: stop the ranks, as on Ctrl-C


def _die_with_parent() -> None:
    """In a rank, before exec: SIGTERM when the launcher dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _stop(procs: list[subprocess.Popen], grace_s: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# --------------------------------------------------------------------------- in a rank


class Communicator:
    """This rank's membership of the process group, and the few collectives the loop uses."""

    def __init__(self, env: DistEnv, device):
        import torch
        import torch.distributed as dist

        self.env = env
        self.rank = env.rank
        self.world_size = env.world_size
        self.is_main = env.is_main
        self.device = device
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group(
                self.backend,
                rank=env.rank,
                world_size=env.world_size,
                timeout=timedelta(seconds=timeout_seconds()),
                **({"device_id": device} if device.type == "cuda" else {}),
            )
        except Exception as exc:  # a port in use, an unreachable master
            raise DistributedError(
                f"rank {env.rank} could not join the process group at "
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}: {exc}"
            ) from None

    def broadcast_object(self, obj):
        """``obj`` from rank 0, on every rank (pickled)."""
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def all_sum(self, values: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def all_min(self, value: float) -> float:
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return float(tensor.item())

    def all_gather_object(self, obj) -> list:
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            self.barrier()  # no rank tears its connections down while another still uses them
            dist.destroy_process_group()


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a peer that died or timed out, as gloo and nccl report it."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        marker in text
        for marker in ("Connection closed by peer", "Connection reset", "gloo", "NCCL", "Timed out")
    )


def sync_batchnorm(module):
    """``module`` with every batch normalization computing its batch statistics over all
    ranks: torch's ``nn.BatchNorm*`` through ``nn.SyncBatchNorm``, specc's Keras-exact
    batch norm (the generated ``KerasBatchNorm``) through a synchronized equivalent.
    Parameters and buffers are kept (the same tensors)."""
    import torch

    module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    _convert_keras_batch_norms(module)
    return module


def _convert_keras_batch_norms(module) -> None:
    for name, child in list(module.named_children()):
        if _is_keras_batch_norm(child):
            setattr(module, name, _sync_keras_batch_norm(child))
        else:
            _convert_keras_batch_norms(child)


def _is_keras_batch_norm(module) -> bool:
    doc = type(module).__doc__ or ""
    return doc.lstrip().startswith("keras.layers.BatchNormalization") and hasattr(
        module, "running_var"
    )


def _sync_keras_batch_norm_class():
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    class AllReduceSum(torch.autograd.Function):
        """Sum over ranks; its gradient is the sum over ranks of the gradients."""

        @staticmethod
        def forward(ctx, tensor):
            tensor = tensor.clone()
            dist.all_reduce(tensor)
            return tensor

        @staticmethod
        def backward(ctx, grad):
            grad = grad.clone()
            dist.all_reduce(grad)
            return grad

    class _SyncKerasBatchNorm(torch.nn.Module):
        """Keras's batch normalization with the batch mean and biased variance taken over
        every rank's shard (an autograd all-reduce of the sums), as one process computes
        them over the global batch."""

        @classmethod
        def convert(cls, old):
            new = cls()
            new.num_features, new.eps, new.momentum = old.num_features, old.eps, old.momentum
            new.weight, new.bias = old.weight, old.bias
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                new.register_buffer(name, getattr(old, name))
            return new

        def forward(self, x):
            if not self.training:
                return F.batch_norm(
                    x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                    self.eps,
                )  # fmt: skip
            dims = [0, *range(2, x.dim())]
            wide = x.double()  # E[x^2] - E[x]^2 in float64: as exact as one process's var_mean
            count = torch.full((1,), x.numel() / x.shape[1], dtype=wide.dtype, device=x.device)
            stats = torch.cat([wide.sum(dim=dims), (wide * wide).sum(dim=dims), count])
            stats = AllReduceSum.apply(stats)
            c = self.num_features
            total = stats[2 * c]
            mean64 = stats[:c] / total
            var = (stats[c : 2 * c] / total - mean64 * mean64).clamp_min(0.0).to(x.dtype)
            mean = mean64.to(x.dtype)
            with torch.no_grad():
                self.running_mean.copy_(
                    self.running_mean * self.momentum + mean.detach() * (1 - self.momentum)
                )
                self.running_var.copy_(
                    self.running_var * self.momentum + var.detach() * (1 - self.momentum)
                )
                self.num_batches_tracked.add_(1)
            shape = [1, c] + [1] * (x.dim() - 2)
            y = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
            if self.weight is not None:  # gamma and beta each optional (Keras's scale, center)
                y = y * self.weight.reshape(shape)
            if self.bias is not None:
                y = y + self.bias.reshape(shape)
            return y

    return _SyncKerasBatchNorm


_SYNC_CLASS: list = []


def _sync_keras_batch_norm(old):
    """The synchronized replacement of one generated Keras-exact batch norm (torch is
    imported only when a run asks for it)."""
    if not _SYNC_CLASS:
        _SYNC_CLASS.append(_sync_keras_batch_norm_class())
    return _SYNC_CLASS[0].convert(old)


def data_parallel_backend(module, training, comm: Communicator, *, sync_bn: bool = False, **kw):
    """A TorchBackend whose forward pass runs through DistributedDataParallel."""
    from .torch_backend import TorchBackend

    class DataParallelTorchBackend(TorchBackend):
        def __init__(self):
            import warnings

            from torch.nn.parallel import DistributedDataParallel

            # the generated modules' channels-last permutes give some gradients other strides
            # than DDP's buckets: a copy per step, no change in numerics
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
            mod = sync_batchnorm(module) if sync_bn else module
            super().__init__(mod, training, **kw)
            self.comm = comm
            self.is_main = comm.is_main
            self.world_size = comm.world_size
            self.net = DistributedDataParallel(
                self.module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                forward_sync_buffers=True,
            )

        samples = 0  # rows this rank trained on, and the seconds its steps took
        step_seconds = 0.0

        def train_step(self, x, y) -> tuple[float, float]:
            n = len(x)
            lo, hi, weight = shard_bounds(n, comm.rank, comm.world_size)
            started = time.perf_counter()
            loss, acc = self._step(x[lo:hi], y[lo:hi], weight)
            self.step_seconds += time.perf_counter() - started
            self.samples += hi - lo
            if n < comm.world_size:  # every rank trained the whole batch
                return loss, acc
            loss_sum, acc_sum = comm.all_sum([loss * (hi - lo), acc * (hi - lo)])
            return loss_sum / n, acc_sum / n

        rank_rngs: list | None = None  # every rank's random state, for a checkpoint

        def gather_rng(self) -> None:
            """Collect every rank's random state (Dropout draws differ per rank) so that
            rank 0's checkpoint resumes each rank mid-epoch exactly. Every rank calls it."""
            self.rank_rngs = comm.all_gather_object(self._cpu(self._rng_states()))

        def _rng_states(self) -> dict:
            import torch

            states = {"rng": self.rng_state()}
            if self.device.type == "cuda":
                states["cuda_rng"] = torch.cuda.get_rng_state(self.device)
            return states

        def state(self) -> dict:
            state = super().state()
            if self.rank_rngs is not None:
                state["rank_rngs"] = self.rank_rngs
            return state

        def load_state(self, state: dict) -> None:
            super().load_state(state)
            rngs = state.get("rank_rngs") if isinstance(state, dict) else None
            if isinstance(rngs, list) and len(rngs) == comm.world_size:
                self.rank_rngs = rngs
                mine = rngs[comm.rank]
                self.set_rng_state(mine["rng"].cpu())
                if self.device.type == "cuda" and "cuda_rng" in mine:
                    import torch

                    torch.cuda.set_rng_state(mine["cuda_rng"].cpu(), self.device)

        def share(self, state):
            """Rank 0's model, optimizer and loop state (``state``) on every rank."""
            payload = comm.broadcast_object((self._cpu_state(), state) if comm.is_main else None)
            if not comm.is_main:
                self.load_state(payload[0])
            return payload[1]

        def _cpu_state(self) -> dict:
            return self._cpu(self.state())

        @staticmethod
        def _cpu(value):
            import torch

            def cpu(value):
                if isinstance(value, torch.Tensor):
                    return value.detach().cpu()
                if isinstance(value, dict):
                    return {k: cpu(v) for k, v in value.items()}
                if isinstance(value, list):
                    return [cpu(v) for v in value]
                return value

            return cpu(value)

    return DataParallelTorchBackend()


def global_batch_line(batch_size: int, world: int) -> str:
    per = [hi - lo for lo, hi, _ in (shard_bounds(batch_size, r, world) for r in range(world))]
    shares = f"{per[0]} per rank" if len(set(per)) == 1 else f"{min(per)}-{max(per)} per rank"
    return f"data parallel: {world} ranks; global batch {batch_size} ({shares})"


__all__ = [
    "Communicator",
    "DistEnv",
    "DistributedError",
    "data_parallel_backend",
    "environment",
    "global_batch_line",
    "is_collective_failure",
    "launch",
    "shard_bounds",
    "sync_batchnorm",
]


# --------------------------------------------------------------------------- run.py hooks


def setup(options, training):
    """(Communicator or None, torch.device or None) for a run: joins the process group when
    this process is a rank of a launch; resolves ``--device`` / ``--precision``."""
    from .devices import check_precision, parse_device, resolve_device

    try:
        env = environment()
    except ValueError as exc:
        raise RunError(str(exc)) from None
    if options.backend != "pytorch":
        if env is not None:
            raise RunError(
                "several ranks (WORLD_SIZE > 1) train with --backend pytorch; for Keras use "
                "--devices N (MirroredStrategy) or TF_CONFIG (MultiWorkerMirroredStrategy)"
            )
        if options.device != "auto":
            raise RunError("--device is a PyTorch option; Keras places work itself (--devices)")
        return None, None
    try:
        parse_device(options.device)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    device = resolve_device(
        options.device,
        env.local_rank if env else 0,
        env.local_world_size if env else 1,
    )
    check_precision(options.precision, device)
    if env is None:
        return None, device
    if training.batch_size < env.world_size:
        raise RunError(
            f"batch size {training.batch_size} is smaller than the {env.world_size} ranks: "
            "the global batch is split across ranks; raise --batch-size"
        )
    return Communicator(env, device), device


def code_folder(out_dir: Path, main: bool) -> Path:
    """Where a rank writes the generated model code it imports: the run folder on rank 0,
    a private temporary folder elsewhere (the run folder may be on another machine)."""
    if main:
        return out_dir
    return Path(tempfile.mkdtemp(prefix="specc-rank-"))


class guarded:
    """Turns a lost peer (gloo / nccl errors, collective timeouts) into a DistributedError
    naming this rank; closes the process group after a clean run."""

    def __init__(self, comm: Communicator | None):
        self.comm = comm

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if self.comm is None:
            return False
        if exc is None:
            self.comm.close()
            return False
        if isinstance(exc, Exception) and not isinstance(exc, RunError):
            if is_collective_failure(exc):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else kind.__name__
                raise DistributedError(
                    f"rank {self.comm.rank} of {self.comm.world_size} lost contact with the "
                    f"other ranks ({first[:200]}); the job stops here and can be continued "
                    "with --resume"
                ) from None
        return False


def run_record(backend, comm, device, options, training, state) -> dict:
    """The run.json fields of this run's devices, ranks and per-rank throughput."""
    from .devices import describe

    if options.backend != "pytorch":
        from .keras_distribute import describe as keras_device

        return {
            "device": getattr(backend, "device_description", None) or keras_device(None),
            "world_size": 1,
            "replicas": getattr(backend, "replicas", 1),
            "global_batch_size": training.batch_size,
        }
    overall = round(state.samples_seen / state.train_seconds, 1) if state.train_seconds else None
    if comm is None:
        return {
            "device": describe(device),
            "world_size": 1,
            "global_batch_size": training.batch_size,
            "per_rank": [{"rank": 0, "device": describe(device), "samples_per_second": overall}],
        }
    mine = {
        "rank": comm.rank,
        "host": socket.gethostname(),
        "device": describe(device),
        "samples": backend.samples,
        "step_seconds": round(backend.step_seconds, 3),
        "samples_per_second": round(backend.samples / backend.step_seconds, 1)
        if backend.step_seconds
        else None,
    }
    return {
        "device": describe(device),
        "world_size": comm.world_size,
        "distributed_backend": comm.backend,
        "sync_batchnorm": options.sync_batchnorm,
        "global_batch_size": training.batch_size,
        "per_rank": comm.all_gather_object(mine),
    }
