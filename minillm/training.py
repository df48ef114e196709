"""Training: one plain loop for both tasks, and the pieces it is made of.

Holds: AdamW with weight decay on matrices only, warm-up then cosine learning rate, the
loss, the attention kernel for the training precision, `train_step` (one optimizer step
with gradient accumulation and clipping; the benchmarks call it too), `build_model`, and
`train`: keep-best checkpoints that are never non-finite, early stopping, resume, a
wall-clock budget, Ctrl-C and SIGTERM, torchrun.

Leaves out: the settings (minillm.config), argument parsing (minillm.cli.train), reading,
splitting and batching the data (minillm.formats, minillm.data, minillm.corpus), the
validation scores (minillm.evaluation), the run's state and what --resume may change
(minillm.run_state), the stop signals (minillm.stopping), the --out folder and its
metrics.jsonl (minillm.run_folder), the checkpoint file format (minillm.checkpoint) and
the process group set-up for torchrun (minillm.distributed).
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from minillm import distributed as dist
from minillm.checkpoint import (
    CheckpointError,
    lm_head_trained,
    model_from_checkpoint,
    save_checkpoint,
)
from minillm.config import TrainConfig
from minillm.data import (
    IGNORE,
    Dataset,
    class_counts,
    class_weights,
    objective_at,
    prepare_data,
    train_batch,
)
from minillm.device import (
    autocast,
    configure_backends,
    maybe_compile,
    needs_grad_scaler,
    pick_device,
    pick_dtype,
)
from minillm.evaluation import eval_line, evaluate, final_report
from minillm.inference import running_versions
from minillm.metrics import task_score
from minillm.model import MiniLM
from minillm.run_folder import MetricsLog, claim_out_folder, settle_killed_overwrite
from minillm.run_state import RunState, starting_point
from minillm.stopping import Stopped, StopSignal
from minillm.tokenizer import Tokenizer

# -----------------------------------------------------------------------------
# Learning rate and optimizer


def lr_at(progress: float, step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over warmup_steps, then a cosine from lr down to lr * min_lr_ratio.

    `progress` in [0, 1] is how much of the run is done: steps / max_steps, or the share of
    the wall-clock budget spent, whichever is larger. `cfg` is resolved (see TrainConfig).
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def make_optimizer(model: MiniLM, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay only on the weight matrices of linear layers.

    Decay pulls weights towards zero. For matrices that is useful regularisation; for norm
    gains (which should sit near 1), biases and embedding rows (most rows are rare tokens,
    which decay would erase between their updates) it only does harm.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_matrix = p.dim() == 2 and "emb" not in name
        (decay if is_matrix else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"  # one kernel for the whole update
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused or None)


# -----------------------------------------------------------------------------
# The loss and the attention kernel for the training precision


def summed_cross_entropy(logits, targets, weight=None) -> torch.Tensor:
    """Sum over rows of -weight[y] * log softmax(logits)[y]; logits (N, V), targets (N,).

    bfloat16 logits stay bfloat16: autocast would copy them to float32 first, and on the
    CPU that copy, a float32 log-softmax and its backward cost a noticeable share of a
    bf16 training step (BENCHMARKS.md). Only the per-row losses are summed in float32: a
    bfloat16 sum of thousands of terms would be too coarse. Every other dtype runs in
    float32.
    """
    if logits.dtype != torch.bfloat16:
        return F.cross_entropy(logits.float(), targets, weight=weight, reduction="sum")
    if weight is not None:
        weight = weight.to(torch.bfloat16)
    with torch.autocast(logits.device.type, enabled=False):
        per_row = F.cross_entropy(logits, targets, weight=weight, reduction="none")  # (N,)
    return per_row.float().sum()


def attention_kernel(device: torch.device, dtype: torch.dtype, block_size: int) -> str:
    """The kernel to train with: "explicit" where it is faster (bf16 on the CPU), else "fused".

    There the fused kernel's bf16 backward is slow at short blocks (BENCHMARKS.md). The
    explicit one holds a (B, nh, T, T) score matrix, so long blocks keep the fused kernel.
    Both apply the same attention dropout.
    """
    explicit = device.type == "cpu" and dtype == torch.bfloat16 and block_size <= 256
    return "explicit" if explicit else "fused"


class LanguageModel(torch.nn.Module):
    """The language-model objectives as one module (for DDP and torch.compile, which see
    `forward`): next-token logits (b, T, V), or with `picked` (b, T) the masked-token
    logits at the picked positions (N, V)."""

    def __init__(self, model: MiniLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor, picked: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(idx) if picked is None else self.model.masked_logits(idx, picked)


class Classifier(torch.nn.Module):
    """The classification objective as a module whose forward is `classify` (for DDP and
    torch.compile, which see `forward`)."""

    def __init__(self, model: MiniLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None):
        return self.model.classify(idx, attention_mask)


# -----------------------------------------------------------------------------
# One optimizer step


def train_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: tuple[torch.Tensor, ...],
    targets: torch.Tensor,
    *,
    device: torch.device,
    dtype: torch.dtype,
    micro_batches: int = 1,
    class_weights: torch.Tensor | None = None,
    grad_clip: float = 1.0,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One optimizer step on one batch; returns this process's mean loss over the batch.

    `net`'s forward is the objective: a `LanguageModel` for next-token logits (inputs (x,),
    targets (B, T)) or masked-token logits (inputs (x, picked), targets (B, T), IGNORE where
    not picked), or a `Classifier` (inputs (ids, mask), targets (B,)); possibly wrapped by
    DDP or torch.compile. The batch runs as `micro_batches` chunks, each forward and backward
    on its own (DDP all-reduces only on the last), so a large batch fits in memory; the
    summed gradients are exactly those of the whole batch. Then the gradient norm is
    clipped to `grad_clip` (0 = off) and the optimizer steps. Set the learning rate first.
    """
    w = class_weights[targets.to(device)] if class_weights is not None else None
    denom = float((targets != IGNORE).sum() if w is None else w.sum())  # (weighted) targets
    loss_sum = 0.0
    micro_inputs = zip(*(t.chunk(micro_batches) for t in inputs), strict=True)
    chunks = zip(micro_inputs, targets.chunk(micro_batches), strict=True)
    for m, (chunk_inputs, chunk_targets) in enumerate(chunks):
        with dist.maybe_no_sync(net, last=m == micro_batches - 1), autocast(device, dtype):
            logits = net(*(t.to(device) for t in chunk_inputs))  # (b, T, V), (N, V) or (b, K)
            y = chunk_targets.to(device).flatten()
            y = y[y != IGNORE]  # masked tokens: the picked positions, in the logits' order
            loss = summed_cross_entropy(logits.flatten(0, -2), y, class_weights)
            # each micro-batch adds its share of the batch mean: the sum of the shares is
            # exactly the full batch's mean loss, and so is its gradient
            loss = loss / denom
            (scaler.scale(loss) if scaler else loss).backward()
        loss_sum += loss.item()
    if scaler:
        scaler.unscale_(optimizer)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of one step's dropout on one rank; ranks draw different masks."""
    return (seed * 1_000_003 + step) * 1_009 + rank + 1


# -----------------------------------------------------------------------------
# The run


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says where and why."""


def train(cfg: TrainConfig, log=print, status=None) -> Path:
    """Run one training job; returns the path of the best checkpoint.

    `log` prints a line. `status`, if given, shows the periodic training line instead of
    `log` (a terminal's self-clearing status line, see minillm.progress).
    """
    rank, world = dist.setup()
    is_main = rank == 0
    log = log if is_main else (lambda *a, **k: None)
    try:
        if cfg.resume and is_main:  # what an --overwrite run killed outright left aside
            settle_killed_overwrite(cfg.out, log)
        cfg, ckpt = starting_point(cfg, world, log)  # every setting checked: no data read yet
        folder = claim_out_folder(cfg.out, resume=cfg.resume, overwrite=cfg.overwrite,
                                  log=log)  # fmt: skip
        with folder if is_main else nullcontext():  # refuses a used or busy --out
            best = _train(cfg, ckpt, rank, world, log, status if is_main else None)
        dist.finish()
        return best
    finally:
        dist.teardown()


def build_model(cfg: TrainConfig, dataset: Dataset, ckpt: dict | None, device, dtype, *,
                keep_average: bool, log) -> tuple[MiniLM, AveragedModel | None]:  # fmt: skip
    """The model to train, new, from --init-from's trunk or from --resume's weights, on
    `device`; and with --ema (where `keep_average`: rank 0 alone evaluates and saves) the
    moving average of its weights."""
    last_path = Path(cfg.out) / "last.pt"
    n_classes = len(dataset.label_names) if dataset.label_names else 0
    kernel = attention_kernel(device, dtype, cfg.block_size)
    if cfg.resume:
        model = model_from_checkpoint(ckpt, last_path, attention=kernel)
        if "train_model" in ckpt:  # an --ema run: "model" holds the average
            model.load_state_dict(ckpt["train_model"])
    else:
        model = MiniLM(cfg.model_config(dataset.tokenizer.vocab_size, n_classes), attention=kernel)
    if ckpt and not cfg.resume:  # --init-from
        trunk = {k: v for k, v in ckpt["model"].items() if not k.startswith("cls_head.")}
        try:
            missing, unexpected = model.load_state_dict(trunk, strict=False)
            fits = not unexpected and all(k.startswith("cls_head.") for k in missing)
        except RuntimeError:  # a weight of another shape (a vocabulary its tokenizer lacks)
            fits = False
        if not fits:
            raise CheckpointError(f"{cfg.init_from}: its weights do not fit this model")
        log(f"initialised the trunk from {cfg.init_from}")
    model.to(device)
    # With --ema, `averaged` follows the weights as avg <- ema * avg + (1 - ema) * weights
    # after every step (PyTorch's AveragedModel); it is what gets evaluated and saved, so
    # the selected checkpoint is less at the mercy of the last few batches.
    averaged = None
    if cfg.ema and keep_average:
        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema))
        if cfg.resume:
            averaged.module.load_state_dict(ckpt["model"])
            averaged.n_averaged.fill_(ckpt["ema_updates"])
    return model, averaged


def _train(cfg: TrainConfig, ckpt: dict | None, rank: int, world: int, log, status) -> Path:
    """The run itself, on a checked config (`starting_point`) in a claimed --out."""
    is_main = rank == 0
    device = dist.device_for_rank(pick_device(cfg.device), rank)
    dtype = pick_dtype(cfg.dtype, device)
    configure_backends(device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed + rank)
    out = Path(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"

    # -- the data and the model, fresh or from a checkpoint
    tokenizer = Tokenizer.from_json(ckpt["tokenizer"]) if ckpt else None
    dataset = prepare_data(cfg, tokenizer, ckpt.get("label_names") if cfg.resume else None, log)
    classifier = cfg.task != "lm"  # sentiment or classify: the classification head
    if cfg.objective != "causal":
        _ = dataset.tokenizer.mask_id  # a ValueError now if the tokenizer has no <|mask|>
    try:
        model, averaged = build_model(cfg, dataset, ckpt, device, dtype, keep_average=is_main,
                                      log=log)  # fmt: skip
    except (MemoryError, RuntimeError) as err:
        if not out_of_memory(err):
            raise
        raise TrainingError(f"out of memory building the model on {device}: lower --n-layer, "
                            f"--n-embd, --block-size or --vocab-size") from None  # fmt: skip
    log(f"model: {model.num_params() / 1e6:.2f}M parameters, {model.config}")

    optimizer = make_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(device, dtype) else None
    state = RunState()
    if cfg.resume:
        optimizer.load_state_dict(ckpt["optimizer"])
        state = RunState.from_checkpoint(ckpt)
        log(f"resumed {last_path} at step {state.step}")
    if not classifier and len(dataset.train_stream) <= cfg.block_size + 1:
        raise ValueError(
            f"the training text has {len(dataset.train_stream)} tokens, fewer than block_size + 2"
        )
    log(f"batch: {cfg.batch_size} sequences/step = {world} process(es) x {cfg.grad_accum} "
        f"micro-batch(es) x {cfg.batch_size // world // cfg.grad_accum}; device {device}, "
        f"{str(dtype)[6:]}")  # fmt: skip

    # The module whose forward is the training objective: DDP and torch.compile see forward.
    example = torch.zeros(1, min(8, cfg.block_size), dtype=torch.long, device=device)
    objective = Classifier(model) if classifier else LanguageModel(model)
    net = dist.wrap(maybe_compile(objective, cfg.compile, example), device)
    weights = None
    if classifier and cfg.class_weights:
        counts = class_counts(dataset.train_labels, len(dataset.label_names))
        weights = class_weights(counts).float().to(device)
        log("class weights: " + ", ".join(f"{w:.2f}" for w in weights.tolist()))
    metrics = MetricsLog(out / "metrics.jsonl", state.step if cfg.resume else None, is_main, log)
    # A classifier trained from scratch never trains the language-model head; sample.py warns.
    # So does a masked-token model: its head predicts hidden tokens, not the next one.
    lm_head = (cfg.task == "lm" and cfg.objective != "masked") or (
        ckpt is not None and lm_head_trained(ckpt)
    )
    saving = dict(cfg=cfg, dataset=dataset, model=model, averaged=averaged, optimizer=optimizer,
                  state=state, metrics=metrics, out=out, device=device, dtype=dtype, log=log,
                  lm_head_trained=lm_head)  # fmt: skip

    # -- the loop: one optimizer step over the global batch at a time
    stop_signal = StopSignal(log)
    stop_reason = "max steps"
    saved_step = state.step if cfg.resume else None  # the step last.pt holds
    budget = cfg.max_minutes * 60 if cfg.max_minutes else None
    t_start, elapsed_before = time.time(), state.elapsed_s
    tokens_seen, t_log = 0, time.time()
    model.train()
    try:
        while state.step < cfg.max_steps:
            if dist.any_rank(stop_signal.requested, device):  # Ctrl-C: stop between steps
                stop_reason = "interrupted"
                break
            state.elapsed_s = elapsed_before + time.time() - t_start
            if budget and dist.any_rank(state.elapsed_s >= budget, device):
                stop_reason = f"time budget of {cfg.max_minutes:g} min"
                break
            progress = max(state.step / cfg.max_steps, state.elapsed_s / budget if budget else 0.0)
            lr = lr_at(dist.broadcast_float(progress, device), state.step, cfg)
            set_lr(optimizer, lr)
            # Dropout draws from a stream that is a function of (seed, rank, step) alone,
            # like the batches, so a resumed run draws what the uninterrupted run would have.
            torch.manual_seed(step_seed(cfg.seed, rank, state.step))
            try:
                inputs, targets = train_batch(dataset, cfg, state.step, rank, world)
                loss = train_step(net, optimizer, inputs, targets, device=device, dtype=dtype,
                                  micro_batches=cfg.grad_accum, class_weights=weights,
                                  grad_clip=cfg.grad_clip, scaler=scaler)  # fmt: skip
            except (MemoryError, RuntimeError) as err:
                if not out_of_memory(err):
                    raise
                raise TrainingError(
                    f"out of memory at step {state.step + 1} with --batch-size {cfg.batch_size} "
                    f"(micro-batches of {cfg.batch_size // world // cfg.grad_accum} x "
                    f"{cfg.block_size} tokens): lower --batch-size or raise --grad-accum"
                ) from None
            loss = dist.mean(loss, device)
            if not math.isfinite(loss):
                raise TrainingError(f"the loss became {loss} at step {state.step + 1}; stopping. "
                                    + good_checkpoints(out, state))  # fmt: skip
            if averaged is not None:
                averaged.update_parameters(model)
            state.step += 1
            state.elapsed_s = elapsed_before + time.time() - t_start
            tokens_seen += world * int(inputs[1].sum() if classifier else inputs[0].numel())

            if state.step % cfg.log_interval == 0 and is_main:
                tokens_per_s = tokens_seen / max(time.time() - t_log, 1e-9)
                tokens_seen, t_log = 0, time.time()
                row = {"step": state.step, "kind": "train", "loss": loss, "lr": lr,
                       "tokens_per_s": tokens_per_s, "elapsed_s": state.elapsed_s}  # fmt: skip
                if cfg.objective != "causal":  # which loss this is
                    row["objective"] = objective_at(cfg.objective, state.step - 1)
                metrics.append(row)
                (status or log)(_progress_line(state, cfg, loss, lr, tokens_per_s))

            if state.step % cfg.eval_interval == 0 or state.step == cfg.max_steps:
                if is_main:
                    evaluate_and_save(**saving)
                    saved_step = state.step
                out_of_patience = classifier and 0 < cfg.patience <= state.evals_since_best
                if dist.any_rank(out_of_patience, device):
                    stop_reason = f"no improvement in {cfg.patience} evaluations"
                    break
    finally:
        stop_signal.restore()

    # -- the end: evaluate and save whatever the last evaluation did not cover
    if is_main:
        if saved_step != state.step:
            evaluate_and_save(**saving)
        final_report(cfg, metrics.rows, best_path, dataset, device, dtype, log)
        log(f"stopped after {state.step} steps ({stop_reason}) in {_clock(state.elapsed_s)}; "
            f"best {_selection_metric(cfg)[0]} {state.best_metric:.4f} at step "
            f"{state.best_step} -> {best_path}")  # fmt: skip
    if stop_reason == "interrupted":
        how = "interrupted" if stop_signal.signum == signal.SIGINT else "stopped by SIGTERM"
        raise Stopped(f"{how} at step {state.step}; state saved to {last_path}; continue with "
                      f"--resume", stop_signal.signum)  # fmt: skip
    return best_path


def _selection_metric(cfg: TrainConfig) -> tuple[str, bool]:
    """The validation score that picks best.pt (a classifier's resolved --metric, see
    minillm.metrics.task_score; a language model's loss: the masked-token loss for
    --objective masked, else the next-token loss), and whether higher is better."""
    if cfg.task != "lm":
        return cfg.metric, True
    return ("masked_loss" if cfg.objective == "masked" else "loss"), False


def evaluate_and_save(*, cfg, dataset, model, averaged, optimizer, state, metrics, out,
                      device, dtype, log, lm_head_trained) -> None:  # fmt: skip
    """Evaluate at `state.step`, log it, keep best.pt if it improved, and save last.pt.

    The weights evaluated and saved are the model's, or with --ema their average; an --ema
    last.pt keeps the trained weights too, for --resume. best.pt holds what inference and
    --init-from need; last.pt adds the optimizer state. A non-finite score or weight is
    never saved: the run stops, and the files already saved stay as they were.
    """
    evaluated = model if averaged is None else averaged.module
    scores = evaluate(evaluated, dataset, cfg, device, dtype)
    key, higher_is_better = _selection_metric(cfg)
    value = task_score(scores, key) if cfg.task != "lm" else scores[key]
    finite = all_finite(model) and (evaluated is model or all_finite(evaluated))  # --ema: both
    if not (math.isfinite(scores["loss"]) and math.isfinite(value) and finite):
        what = (f"the validation loss became {scores['loss']}" if not math.isfinite(scores["loss"])
                else f"the validation {key} became {value}" if not math.isfinite(value)
                else "some weights became non-finite")  # fmt: skip
        raise TrainingError(f"{what} at step {state.step}; stopping without saving that state. "
                            + good_checkpoints(out, state))  # fmt: skip
    metrics.append({"step": state.step, "kind": "val", **_scalars(scores)})  # finite, so saved
    improved = state.record(value, higher_is_better)
    log(eval_line(state.step, scores, cfg.metric) + ("  (best)" if improved else ""))
    for_inference = {
        "model_config": asdict(model.config),
        "model": evaluated.state_dict(),
        "tokenizer": dataset.tokenizer.to_json(),
        "label_names": dataset.label_names,
        "metric": cfg.metric,  # what picked this file: a classifier's score, None for an LM
        "lm_head_trained": lm_head_trained,
        "versions": running_versions(),
        "train_config": asdict(cfg),
        **asdict(state),  # step, elapsed_s, best_metric, best_step, evals_since_best
        "metrics": scores,
    }
    for_resume = {"optimizer": optimizer.state_dict()}
    if averaged is not None:
        for_resume.update(train_model=model.state_dict(), ema_updates=int(averaged.n_averaged))
    if improved:
        save_checkpoint(for_inference, out / "best.pt")
    save_checkpoint({**for_inference, **for_resume}, out / "last.pt")


def out_of_memory(err: BaseException) -> bool:
    """An allocation that failed: NumPy's MemoryError, CUDA's OutOfMemoryError, or the CPU
    allocator's RuntimeError."""
    return isinstance(err, MemoryError | torch.OutOfMemoryError) or (
        "can't allocate memory" in str(err)
    )


def all_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.state_dict().values()
               if p.is_floating_point())  # fmt: skip


def good_checkpoints(out: Path, state: RunState) -> str:
    """Which saved files a failed run leaves to use (every saved state is finite)."""
    best, last = out / "best.pt", out / "last.pt"
    if not last.exists():
        return "No checkpoint had been saved yet."
    return (f"Saved before it, and good: {best} (step {state.best_step}, the best so far) "
            f"and {last} (the latest state, for --resume).")  # fmt: skip


def _progress_line(state: RunState, cfg: TrainConfig, loss: float, lr: float, tps: float) -> str:
    left = state.elapsed_s / state.step * (cfg.max_steps - state.step)
    if cfg.max_minutes:
        left = min(left, max(cfg.max_minutes * 60 - state.elapsed_s, 0.0))
    return (f"step {state.step:>5}/{cfg.max_steps}  loss {loss:.4f}  lr {lr:.2e}  "
            f"{tps:,.0f} tok/s  {_clock(state.elapsed_s)} elapsed, ~{_clock(left)} left")  # fmt: skip


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"
