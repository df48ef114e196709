"""Where a run stands, and where it starts: what --resume and --init-from may take.

Holds: `RunState` (step, best score, time spent: what a checkpoint saves and --resume
restores), `starting_point` (the checked config of a run and the checkpoint it starts
from, before any data is read), `resumed_config` with `RESUME_MAY_CHANGE` (what a resumed
run may take from its command line; every other setting is the saved run's).

Leaves out: the checkpoint file format and its checks (minillm.checkpoint), the settings
themselves (minillm.config) and the loop that advances the state (minillm.training).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from minillm.checkpoint import CheckpointError, load_checkpoint
from minillm.checkpoint_fields import check_resumable
from minillm.config import MODEL_FIELDS, TrainConfig, flag_name
from minillm.export import load_init_from
from minillm.resources import check_run_fits


@dataclass
class RunState:
    """Where a run stands; saved in every checkpoint (as top-level keys), restored by --resume."""

    step: int = 0  # optimizer steps taken
    elapsed_s: float = 0.0  # training seconds spent, over every session of the run
    best_metric: float | None = None  # the best validation score so far
    best_step: int = -1  # the step that scored it (best.pt)
    evals_since_best: int = 0  # evaluations since then, for --patience

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> RunState:
        return cls(ckpt["step"], ckpt["elapsed_s"], ckpt["best_metric"], ckpt["best_step"],
                   ckpt.get("evals_since_best", 0))  # fmt: skip

    def record(self, value: float, higher_is_better: bool) -> bool:
        """Note an evaluation's score; True if it is the best so far."""
        improved = self.best_metric is None or (
            value > self.best_metric if higher_is_better else value < self.best_metric
        )
        if improved:
            self.best_metric, self.best_step, self.evals_since_best = value, self.step, 0
        else:
            self.evals_since_best += 1
        return improved


# What a resumed run may take from its command line; every other setting is the saved run's.
# The budget and the hardware do not change the run's arithmetic (see README: resume).
RESUME_MAY_CHANGE = ("max_steps", "max_minutes", "eval_interval", "log_interval", "patience",
                     "device", "dtype", "compile", "num_threads")  # fmt: skip


def starting_point(cfg: TrainConfig, world: int = 1, log=print) -> tuple[TrainConfig, dict | None]:
    """The run's resolved, checked config, and the checkpoint it starts from (--resume,
    --init-from); reads no data, so every mistake in the flags shows at once.

    A resumed run continues as it was configured (`resumed_config`). A run that starts
    from a checkpoint takes the trunk's shape from it, not from the preset.
    """
    if cfg.resume and (cfg.init_from or cfg.overwrite):
        other = "--init-from" if cfg.init_from else "--overwrite"
        raise ValueError(f"--resume continues the run in --out; {other} starts another: "
                         f"give one of them")  # fmt: skip
    ckpt = None
    if cfg.resume:
        last_path = Path(cfg.out) / "last.pt"
        if not last_path.is_file():
            raise CheckpointError(f"--resume: no checkpoint to resume at {last_path}")
        ckpt = load_checkpoint(last_path)
        check_resumable(ckpt, last_path)
        cfg = resumed_config(TrainConfig.from_dict(ckpt["train_config"]), cfg, last_path, log)
    elif cfg.init_from:
        ckpt = load_init_from(cfg.init_from)  # a checkpoint, or a Hugging Face folder
    if ckpt:
        shape = ckpt["model_config"]
        cfg = replace(cfg, **{k: shape[k] for k in MODEL_FIELDS if k != "dropout"})
    cfg = cfg.resolved()
    cfg.check_shape()
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ValueError(
            f"--batch-size {cfg.batch_size} must divide evenly into {world} process(es) x "
            f"--grad-accum {cfg.grad_accum} micro-batches"
        )
    check_run_fits(cfg, world)  # sizes and threads this machine cannot give: no data read
    return cfg, ckpt


def resumed_config(saved: TrainConfig, given: TrainConfig, path: Path, log) -> TrainConfig:
    """The saved run's config with what this command line may change (RESUME_MAY_CHANGE).

    A flag given with a value other than the saved run's and not in that list (another
    model shape, learning rate or data, say) cannot be honoured by a resumed run: an
    error says so. Both sets are logged: the saved run's settings and what is new.
    """
    default = TrainConfig()
    anew = {name: getattr(given, name) for name in RESUME_MAY_CHANGE
            if getattr(given, name) != getattr(default, name) or name == "max_minutes"}  # fmt: skip
    for f in fields(TrainConfig):
        value = getattr(given, f.name)
        if f.name in (*RESUME_MAY_CHANGE, "resume", "out") or value == getattr(default, f.name):
            continue  # not given, or free to change
        if value != getattr(saved, f.name):
            raise ValueError(
                f"--resume: {_flags({f.name: value})} differs from the run in {path} "
                f"({_flags({f.name: getattr(saved, f.name)}) or 'not set'}), and a resumed "
                f"run keeps its settings; drop the flag, or start a new run from it with "
                f"--init-from {path} --out NEW"
            )
    cfg = replace(saved, resume=True, overwrite=False, out=given.out, **anew)
    preset = TrainConfig(preset=saved.preset).resolved()
    kept = {f.name: getattr(saved, f.name) for f in fields(TrainConfig)
            if f.name in ("task", "preset") or (f.name not in (*RESUME_MAY_CHANGE, "resume", "out",
            "overwrite") and getattr(saved, f.name) != getattr(preset, f.name))}  # fmt: skip
    changed = {k: v for k, v in anew.items() if v != getattr(saved, k)}
    log(f"resume: from {path}: {_flags(kept)} (every other setting: the preset's or the default)")
    log(f"resume: from this command line: {_flags(changed) or 'nothing new'}")
    return cfg


def _flags(settings: dict) -> str:
    """Settings as the flags that give them: {"task": "lm", "data": ("a", "b")} ->
    "--task lm --data a --data b"; a switch shows by its name alone."""
    parts = []
    for name, value in settings.items():
        flag = flag_name(name)
        if isinstance(value, bool):
            parts += [flag] if value != TrainConfig.__dataclass_fields__[name].default else []
        elif isinstance(value, tuple) and name in ("data", "val"):
            parts += [f"{flag} {v}" for v in value]
        elif isinstance(value, tuple):
            parts.append(f"{flag} {','.join(value)}")
        elif value is not None:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(parts)
