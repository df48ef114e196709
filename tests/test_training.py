"""The training loop in-process on a tiny preset: maths, resume, budgets, failures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from minillm import training
from minillm.checkpoint import load_checkpoint
from minillm.training import TrainConfig, TrainingError, lr_at, make_optimizer, train

ROOT = Path(__file__).resolve().parents[1]
POSTS = str(ROOT / "data" / "posts.csv")


def config(tmp_path, name="run", **kw) -> TrainConfig:
    base = dict(data=(POSTS,), out=str(tmp_path / name), preset="tiny", max_steps=12,
                eval_interval=4, log_interval=4, warmup_steps=3, seed=3, device="cpu")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def quiet(*args, **kwargs):
    pass


def weights(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for name in a:
        diff = (a[name].float() - b[name].float()).abs().max().item()
        assert diff <= atol, f"{name} differs by {diff:.3e}"


@pytest.mark.parametrize("task,objective", [("lm", "causal"), ("lm", "masked"),
                                            ("sentiment", "causal")])  # fmt: skip
def test_gradient_accumulation_equals_the_full_batch(tmp_path, task, objective):
    kw = dict(task=task, objective=objective, log_interval=1)
    full = train(config(tmp_path, "full", grad_accum=1, **kw), log=quiet)
    split = train(config(tmp_path, "split", grad_accum=4, **kw), log=quiet)
    # float32 sums in another order differ in the last bits, and Adam divides by the
    # gradient's size, so weights drift by ~1e-5 after 12 steps; a wrong accumulation
    # (a lost micro-batch, a wrong scale) moves them by ~1e-3 and the loss by a factor.
    assert_same_weights(weights(full.parent / "last.pt"), weights(split.parent / "last.pt"), 1e-4)

    def losses(out):
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        return torch.tensor([r["loss"] for r in rows if r["kind"] == "train"])

    assert torch.allclose(losses(full.parent), losses(split.parent), atol=1e-4)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize(
    "task,device,ema",
    [
        ("lm", "cpu", 0.0),
        ("sentiment", "cpu", 0.0),
        ("sentiment", "cpu", 0.8),  # the average and the weights both carry over
        pytest.param("lm", "cuda", 0.0, marks=CUDA),
        pytest.param("sentiment", "cuda", 0.0, marks=CUDA),
    ],
)
def test_interrupted_and_resumed_run_equals_uninterrupted(
    tmp_path, task, device, ema, monkeypatch, ctrl_c_at_step
):
    # float32 on the GPU too; its embedding backward adds in a varying order (atomics), so
    # there the weights may differ in the last bits, where different dropout draws would
    # move them by ~1e-3.
    kw = dict(task=task, dropout=0.1, device=device, dtype="float32", ema=ema)
    straight = train(config(tmp_path, "straight", **kw), log=quiet)

    cfg = config(tmp_path, "resumed", **kw)
    ctrl_c_at_step(7)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, log=quiet)
    monkeypatch.undo()
    assert load_checkpoint(Path(cfg.out) / "last.pt")["step"] == 7  # step 7 finished, saved
    resumed = train(TrainConfig(**{**cfg.__dict__, "resume": True}), log=quiet)
    assert load_checkpoint(resumed.parent / "last.pt")["step"] == 12
    atol = 0.0 if device == "cpu" else 1e-5
    a, b = load_checkpoint(straight.parent / "last.pt"), load_checkpoint(resumed.parent / "last.pt")
    assert_same_weights(a["model"], b["model"], atol)
    if ema:
        assert_same_weights(a["train_model"], b["train_model"], atol)
    rows = [json.loads(x) for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))


def test_ema_saves_the_moving_average_of_the_weights(tmp_path):
    # A constant learning rate makes runs of 1, 2 and 3 steps follow one trajectory
    # w1, w2, w3; the --ema run must then save avg = w1, then d*avg + (1-d)*w2, then w3's.
    flat = dict(task="sentiment", dropout=0.1, min_lr_ratio=1.0, warmup_steps=0,
                eval_interval=1)  # fmt: skip
    w = [
        weights(
            train(config(tmp_path, f"steps{n}", max_steps=n, **flat), log=quiet).parent / "last.pt"
        )
        for n in (1, 2, 3)
    ]
    d = 0.6
    run = train(config(tmp_path, "ema", max_steps=3, ema=d, **flat), log=quiet)
    saved = load_checkpoint(run.parent / "last.pt")
    assert_same_weights(saved["train_model"], w[2])
    want = {
        name: d * (d * w[0][name] + (1 - d) * w[1][name]) + (1 - d) * w[2][name] for name in w[0]
    }
    assert_same_weights(saved["model"], want, atol=1e-6)
    assert saved["ema_updates"] == 3
    assert not torch.equal(saved["model"]["cls_head.weight"], w[2]["cls_head.weight"])
    # evaluation scores the average: the plain 3-step run, same trajectory, scored otherwise
    plain = load_checkpoint(tmp_path / "steps3" / "last.pt")
    assert saved["metrics"]["loss"] != plain["metrics"]["loss"]


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    cfg = config(tmp_path, eval_interval=2)
    real_forward = training.MiniLM.forward
    calls = {"n": 0}

    def nan_at_step_5(self, idx):
        calls["n"] += self.training  # count training steps, not evaluation batches
        logits = real_forward(self, idx)
        return logits * float("nan") if calls["n"] == 5 and self.training else logits

    monkeypatch.setattr(training.MiniLM, "forward", nan_at_step_5)
    with pytest.raises(TrainingError, match="at step 5"):
        train(cfg, log=quiet)
    assert load_checkpoint(Path(cfg.out) / "last.pt")["step"] == 4


def test_wall_clock_budget_stops_cleanly_and_saves(tmp_path):
    lines = []
    best = train(
        config(tmp_path, max_steps=100_000, max_minutes=0.02),
        log=lambda *a, **k: lines.append(a[0]),
    )
    ckpt = load_checkpoint(best.parent / "last.pt")
    assert 0 < ckpt["step"] < 100_000
    assert any("time budget" in line for line in lines)
    assert ckpt["metrics"]["bpb"] > 0


def test_early_stopping_on_macro_recall(tmp_path):
    lines = []
    cfg = config(
        tmp_path,
        task="sentiment",
        max_steps=400,
        eval_interval=1,
        patience=2,
        lr=1e-9,
        warmup_steps=1,
    )
    train(cfg, log=lambda *a, **k: lines.append(a[0]))
    assert any("no improvement in 2 evaluations" in line for line in lines)
    assert load_checkpoint(Path(cfg.out) / "last.pt")["step"] < 400


def test_outputs_of_a_run(tmp_path):
    best = train(config(tmp_path, task="sentiment"), log=quiet)
    out = best.parent
    for name in ("best.pt", "last.pt", "metrics.jsonl", "loss.png", "confusion.png"):
        assert (out / name).stat().st_size > 0, name
    ckpt = load_checkpoint(best)
    assert ckpt["label_names"] == ["negative", "neutral", "positive"]
    assert set(ckpt["metrics"]) >= {"accuracy", "macro_recall", "macro_f1", "per_class_recall"}
    assert ckpt["train_config"]["task"] == "sentiment"


def test_init_from_lm_checkpoint_keeps_trunk_and_tokenizer(tmp_path):
    lm = train(config(tmp_path, "lm"), log=quiet)
    sent = train(
        config(
            tmp_path,
            "sent",
            task="sentiment",
            init_from=str(lm),
            max_steps=1,
            lr=1e-12,
            warmup_steps=1,
        ),
        log=quiet,
    )
    a, b = load_checkpoint(lm), load_checkpoint(sent)
    assert a["tokenizer"] == b["tokenizer"]
    assert torch.allclose(
        a["model"]["blocks.0.attn.qkv.weight"], b["model"]["blocks.0.attn.qkv.weight"], atol=1e-6
    )


def test_masked_and_joint_pretraining_then_a_bidirectional_classifier(tmp_path):
    """--objective masked scores masked tokens (its LM head never learns the next token);
    joint trains and scores both; a classifier fine-tuned from either reads both ways."""
    masked = load_checkpoint(train(config(tmp_path, "masked", objective="masked"), log=quiet))
    joint = load_checkpoint(train(config(tmp_path, "joint", objective="joint"), log=quiet))
    for ckpt in (masked, joint):
        assert 0.0 < ckpt["metrics"]["masked_accuracy"] < 1.0
        assert math.isfinite(ckpt["metrics"]["masked_loss"]) and "bpb" in ckpt["metrics"]
    assert masked["best_metric"] == masked["metrics"]["masked_loss"]
    assert joint["best_metric"] == joint["metrics"]["loss"]  # joint: the next-token loss
    assert not masked["lm_head_trained"] and joint["lm_head_trained"]
    sent = train(config(tmp_path, "sent", task="sentiment", init_from=str(tmp_path / "masked" /
                 "best.pt"), classifier_attention="bidirectional", max_steps=4), log=quiet)  # fmt: skip
    assert load_checkpoint(sent)["model_config"]["classifier_attention"] == "bidirectional"


def test_a_joint_run_alternates_the_two_objectives(tmp_path, monkeypatch):
    seen = []
    real = training.train_step
    monkeypatch.setattr(training, "train_step", lambda net, opt, inputs, targets, **kw: (
        seen.append(len(inputs)), real(net, opt, inputs, targets, **kw))[1])  # fmt: skip
    train(config(tmp_path, objective="joint", max_steps=6), log=quiet)
    assert seen == [1, 2, 1, 2, 1, 2]  # (x,) for next-token steps, (x, picked) for masked


def test_explicit_val_file_inside_data_folder_is_left_out_of_training(tmp_path):
    folder = tmp_path / "posts"
    folder.mkdir()
    lines = Path(POSTS).read_text(encoding="utf-8").splitlines()
    (folder / "a.csv").write_text("\n".join(lines[:800]) + "\n", encoding="utf-8")
    (folder / "b.csv").write_text("\n".join([lines[0], *lines[800:]]) + "\n", encoding="utf-8")
    log = []
    cfg = config(
        tmp_path, task="sentiment", data=(str(folder),), val=(str(folder / "b.csv"),), max_steps=1
    )
    train(cfg, log=lambda *a, **k: log.append(a[0]))
    assert any("posts: 799 train" in line for line in log), log


def test_learning_rate_schedule():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1, max_steps=110)
    assert lr_at(0.0, 0, cfg) == pytest.approx(1e-4)
    assert lr_at(0.09, 9, cfg) == pytest.approx(1e-3)
    assert lr_at(0.5, 55, cfg) == pytest.approx(1e-4 + 0.5 * 9e-4)
    assert lr_at(1.0, 110, cfg) == pytest.approx(1e-4)
    assert lr_at(2.0, 500, cfg) == pytest.approx(1e-4)  # never below the floor


@pytest.mark.parametrize("weighted", [False, True])
def test_bf16_loss_matches_the_float32_loss(weighted):
    # the bf16 path skips autocast's float32 copy of the logits; its value and gradient
    # must stay within bf16 rounding (~0.4% per element) of the float32 computation
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4096, 512, generator=g) * 3  # (N, V), spread like a trained model's
    targets = torch.randint(512, (4096,), generator=g)
    weight = torch.rand(512, generator=g) + 0.5 if weighted else None
    exact = logits.clone().requires_grad_()
    reference = training.summed_cross_entropy(exact, targets, weight)
    reference.backward()
    low = logits.bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as in the training loop
        value = training.summed_cross_entropy(low, targets, weight)
    value.backward()
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(reference.item(), rel=2e-3)
    scale = exact.grad.abs().max()
    assert (low.grad.float() - exact.grad).abs().max() <= 0.02 * scale
    # and the float32 path is exactly F.cross_entropy with reduction="sum"
    plain = torch.nn.functional.cross_entropy(logits, targets, weight=weight, reduction="sum")
    assert training.summed_cross_entropy(logits, targets, weight).item() == plain.item()


def test_explicit_attention_only_for_bf16_on_the_cpu_at_short_blocks():
    def kernels(dtype, device="cpu", block=128):
        kernel = training.attention_kernel(torch.device(device), dtype, block)
        model = training.MiniLM(TrainConfig(preset="tiny").resolved().model_config(100, 0),
                                attention=kernel)  # fmt: skip
        return {b.attn.kernel for b in model.blocks}

    assert kernels(torch.bfloat16) == {"explicit"}
    assert kernels(torch.float32) == {"fused"}
    assert kernels(torch.bfloat16, block=1024) == {"fused"}
    assert kernels(torch.bfloat16, device="cuda") == {"fused"}


def test_the_training_run_builds_its_model_with_the_chosen_kernel(tmp_path, monkeypatch):
    seen = []
    real_init = training.MiniLM.__init__

    def recording_init(self, config, *, attention="fused"):
        seen.append(attention)
        real_init(self, config, attention=attention)

    monkeypatch.setattr(training.MiniLM, "__init__", recording_init)
    train(config(tmp_path, max_steps=1, dtype="bfloat16"), log=quiet)
    assert seen[0] == "explicit"  # bf16 on the CPU at block 64


def test_no_weight_decay_on_norms_biases_and_embeddings():
    cfg = TrainConfig(preset="tiny", pos="learned", norm="layernorm").resolved()
    model = training.MiniLM(cfg.model_config(100, 3))
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        should = name.endswith("weight") and p.dim() == 2 and "emb" not in name
        assert (id(p) in decayed) == should, name
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_params()


def test_bad_settings_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="--preset"):
        TrainConfig(preset="huge")
    with pytest.raises(ValueError, match="--batch-size 16 must divide"):
        train(config(tmp_path, grad_accum=3), log=quiet)
    with pytest.raises(ValueError, match="--resume"):
        train(config(tmp_path, "fresh", resume=True), log=quiet)
    assert math.isfinite(TrainConfig().resolved().lr)
