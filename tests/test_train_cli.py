"""train.py as a careful tool: flags checked before any data is read, an --out that is
never overwritten by accident or shared by two runs, a resume that says what it takes from
where, failures that leave only good checkpoints, exit codes, the status line."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_training import POSTS, ROOT, quiet
from test_training import config as training_config

import minillm
from minillm import stopping, training
from minillm.checkpoint import load_checkpoint
from minillm.cli import run_command
from minillm.cli import train as train_cli
from minillm.progress import CLEAR_LINE, Status
from minillm.run_folder import RunFolderError, folder_lock, read_metrics
from minillm.training import TrainConfig, TrainingError, train

SHORT = dict(max_steps=6, eval_interval=3, log_interval=3, warmup_steps=2)


def config(tmp_path, name="run", **kw) -> TrainConfig:
    """test_training's tiny run, shorter: 6 steps, evaluated every 3."""
    return training_config(tmp_path, name, **{**SHORT, **kw})


# -- flags: one line naming the flag, before any data is read --------------------------

BAD_FLAGS = [
    (["--max-steps", "0"], "--max-steps"),
    (["--eval-interval", "0"], "--eval-interval"),
    (["--grad-accum", "0"], "--grad-accum"),
    (["--log-interval", "0"], "--log-interval"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-4"], "--batch-size"),
    (["--batch-size", "30", "--grad-accum", "4"], "--batch-size 30 must divide"),
    (["--max-minutes", "nan"], "--max-minutes"),
    (["--max-minutes", "-1"], "--max-minutes"),
    (["--num-threads", "-1"], "--num-threads"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--beta1", "1.5"], "--beta1"),
    (["--beta2", "-0.1"], "--beta2"),
    (["--weight-decay", "inf"], "--weight-decay"),
    (["--dropout", "1"], "--dropout"),
    (["--val-fraction", "nan"], "--val-fraction"),
    (["--vocab-size", "100"], "--vocab-size"),
    (["--n-embd", "100", "--n-head", "3"], "--n-embd (100) must be divisible by --n-head (3)"),
    (["--n-embd", "48", "--n-head", "16"], "even head size"),
    (["--n-layer", "0"], "--n-layer"),
    (["--resume", "--overwrite"], "--overwrite"),
    (["--resume", "--init-from", "x.pt"], "--init-from"),
    (["--mask-rate", "0"], "--mask-rate"),
    (["--mask-keep", "1.5"], "--mask-keep"),
    (["--mask-random", "0.6", "--mask-keep", "0.6"], "must add up to at most 1"),
    (["--task", "sentiment", "--objective", "masked"], "--objective masked pretrains"),
]


@pytest.mark.parametrize(("flags", "expected"), BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_a_bad_flag_is_one_line_naming_it_before_any_data_is_read(tmp_path, capsys, flags,
                                                                  expected):  # fmt: skip
    missing = str(tmp_path / "not-read.csv")  # would be the error if data were read first
    code = train_cli.main(["--preset", "tiny", "--data", missing, "--out", str(tmp_path / "o"),
                           *flags])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert expected in err and "not-read" not in err and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "o").exists(), "nothing is created for a refused run"


def test_huge_batch_is_refused_before_any_data_is_read_naming_the_flag(tmp_path):
    with pytest.raises(ValueError, match=r"--batch-size 100000000 need at least .* of memory"):
        train(config(tmp_path, batch_size=100_000_000, data=(str(tmp_path / "not-read.csv"),)),
              log=quiet)  # fmt: skip


def test_out_of_memory_in_a_step_is_an_error_naming_the_flag(tmp_path, monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")

    monkeypatch.setattr(training, "train_step", no_memory)
    with pytest.raises(TrainingError, match=r"out of memory at step 1 with --batch-size 16"):
        train(config(tmp_path, batch_size=16), log=quiet)


# -- the --out folder ------------------------------------------------------------------


def test_a_used_out_folder_is_refused_unless_resume_or_overwrite(tmp_path):
    cfg = config(tmp_path)
    train(cfg, log=quiet)
    out = Path(cfg.out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(RunFolderError, match=r"already holds a run .*--resume.*--overwrite"):
        train(cfg, log=quiet)
    assert before == {p.name: p.stat().st_mtime_ns for p in out.iterdir()}, "nothing touched"

    (out / "notes.txt").write_text("mine")
    train(TrainConfig(**{**cfg.__dict__, "overwrite": True, "max_steps": 3}), log=quiet)
    rows = read_metrics(out / "metrics.jsonl")
    assert max(r["step"] for r in rows) == 3, "metrics.jsonl is the new run's alone"
    assert load_checkpoint(out / "best.pt")["step"] == 3
    assert (out / "notes.txt").read_text() == "mine", "only the run's own files are replaced"


def test_a_second_run_into_a_busy_out_folder_is_refused(tmp_path):
    cfg = config(tmp_path)
    Path(cfg.out).mkdir()
    with (
        folder_lock(Path(cfg.out)),  # what a running train.py holds
        pytest.raises(RunFolderError, match="in use by another training run"),
    ):
        train(cfg, log=quiet)
    assert list(Path(cfg.out).iterdir()) == []
    train(cfg, log=quiet)  # once the lock is gone the folder is free


@pytest.mark.slow
def test_two_train_py_processes_on_one_out(tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--max-steps", "400",
            "--eval-interval", "200", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, cwd=ROOT)  # fmt: skip
    try:
        for line in first.stdout:  # the first run holds the lock once it trains
            if line.startswith("step"):
                break
        second = subprocess.run([*args, "--overwrite"], capture_output=True, text=True, env=env,
                                cwd=ROOT, timeout=120)  # fmt: skip
        assert second.returncode == 2
        assert "in use by another training run" in second.stderr
    finally:
        first.kill()
        first.wait()


# -- resume ------------------------------------------------------------------------------


def interrupted_run(tmp_path, monkeypatch, ctrl_c_at_step, **kw) -> TrainConfig:
    """A run stopped by Ctrl-C after step 4 of 6, its state in last.pt."""
    cfg = config(tmp_path, **kw)
    ctrl_c_at_step(4)
    with pytest.raises(KeyboardInterrupt, match=r"interrupted at step 4.*--resume") as stop:
        train(cfg, log=quiet)
    assert stop.value.signum == signal.SIGINT
    monkeypatch.undo()
    return cfg


def test_resume_says_what_comes_from_the_checkpoint_and_from_the_command_line(
    tmp_path, monkeypatch, ctrl_c_at_step
):
    cfg = interrupted_run(tmp_path, monkeypatch, ctrl_c_at_step, lr=2e-3)
    lines = []
    given = TrainConfig(out=cfg.out, resume=True, max_steps=9, device="cpu")
    train(given, log=lambda *a, **k: lines.append(a[0]))
    saved, anew = (line for line in lines if line.startswith("resume:"))
    assert "--data " + POSTS in saved and "--preset tiny" in saved and "--lr 0.002" in saved
    assert anew.endswith("--max-steps 9"), anew
    assert load_checkpoint(Path(cfg.out) / "last.pt")["step"] == 9


@pytest.mark.parametrize(("change", "flag"), [(dict(n_layer=3), "--n-layer 3"),
                                               (dict(lr=0.5), "--lr 0.5"),
                                               (dict(task="sentiment"), "--task sentiment")])  # fmt: skip
def test_resume_refuses_a_change_it_cannot_honour(
    tmp_path, monkeypatch, change, flag, ctrl_c_at_step
):
    cfg = interrupted_run(tmp_path, monkeypatch, ctrl_c_at_step)
    with pytest.raises(ValueError, match=f"--resume: {flag} differs from the run"):
        train(TrainConfig(out=cfg.out, resume=True, **change), log=quiet)


def test_a_torn_last_metrics_line_is_dropped_with_a_warning(tmp_path, monkeypatch, ctrl_c_at_step):
    cfg = interrupted_run(tmp_path, monkeypatch, ctrl_c_at_step)
    metrics = Path(cfg.out) / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"step": 5, "kind": "tr')  # kill -9 in the middle of an append
    lines = []
    train(TrainConfig(out=cfg.out, resume=True), log=lambda *a, **k: lines.append(a[0]))
    assert any(f"{metrics}:" in x and "cut short" in x for x in lines)
    assert all(isinstance(r, dict) for r in read_metrics(metrics))


def test_a_bad_metrics_line_before_the_last_names_file_and_line(
    tmp_path, monkeypatch, ctrl_c_at_step
):
    cfg = interrupted_run(tmp_path, monkeypatch, ctrl_c_at_step)
    metrics = Path(cfg.out) / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(RunFolderError, match=f"{metrics}:2: not a JSON line"):
        train(TrainConfig(out=cfg.out, resume=True), log=quiet)


# -- failures keep only good checkpoints -------------------------------------------------


def test_a_diverging_run_never_saves_non_finite_weights(tmp_path):
    cfg = config(tmp_path, lr=1e6, eval_interval=1, warmup_steps=0)
    with pytest.raises(TrainingError) as err:
        train(cfg, log=quiet)
    message = str(err.value)
    for name in ("best.pt", "last.pt"):
        path = Path(cfg.out) / name
        if path.exists():
            assert name in message, "the message names the checkpoints that are good"
            for tensor in load_checkpoint(path)["model"].values():
                assert torch.isfinite(tensor).all(), f"{name} holds non-finite weights"
    if not (Path(cfg.out) / "last.pt").exists():
        assert "No checkpoint had been saved yet" in message


def test_checkpoints_record_versions_and_best_pt_leaves_the_optimizer_out(tmp_path):
    best = train(config(tmp_path), log=quiet)
    best_ckpt, last_ckpt = load_checkpoint(best), load_checkpoint(best.parent / "last.pt")
    assert "optimizer" not in best_ckpt and "optimizer" in last_ckpt
    for ckpt in (best_ckpt, last_ckpt):
        assert ckpt["versions"] == {"minillm": minillm.__version__, "torch": torch.__version__}
        assert ckpt["lm_head_trained"] is True
    assert best.stat().st_size < 0.6 * (best.parent / "last.pt").stat().st_size
    # --init-from a best.pt (no optimizer in it) works, and records the LM head as trained
    sentiment = train(config(tmp_path, "sent", task="sentiment", init_from=str(best)), log=quiet)
    assert load_checkpoint(sentiment)["lm_head_trained"] is True
    scratch = train(config(tmp_path, "scratch", task="sentiment"), log=quiet)
    assert load_checkpoint(scratch)["lm_head_trained"] is False


# -- exit codes and the terminal -----------------------------------------------------------


def test_run_command_exit_codes(capsys):
    def raises(err):
        def body():
            raise err

        return body

    assert run_command(raises(BrokenPipeError())) == 0
    assert run_command(raises(ValueError("--x must be 1"))) == 2
    assert capsys.readouterr().err == "error: --x must be 1\n"
    assert run_command(raises(stopping.Stopped("stopped by SIGTERM", signal.SIGTERM))) == 143
    assert run_command(raises(KeyboardInterrupt())) == 130
    assert run_command(raises(TrainingError("diverged")), (TrainingError,)) == 2


@pytest.mark.slow
def test_sigterm_saves_and_exits_143(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--max-steps", "5000",
         "--eval-interval", "5000", "--log-interval", "5", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    for line in proc.stdout:
        if line.startswith("step"):
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM at step" in err and "Traceback" not in err
    assert load_checkpoint(out / "last.pt")["step"] > 0


def test_the_status_line_clears_itself():
    stream = io.StringIO()
    status = Status(stream, interval=0, enabled=True)
    status.update("step 10/300  loss 4.1234  a long line")
    status.update("step 20")
    status.print("eval step 20: loss 3.0", file=stream)
    text = stream.getvalue()
    assert text == (CLEAR_LINE + "step 10/300  loss 4.1234  a long line" + CLEAR_LINE
                    + "step 20" + CLEAR_LINE + "eval step 20: loss 3.0\n")  # fmt: skip
    quiet_stream = io.StringIO()
    Status(quiet_stream).update("x", force=True)  # not a terminal: nothing at all
    assert quiet_stream.getvalue() == ""


def test_on_a_terminal_training_progress_goes_to_the_status_line(tmp_path):
    shown, logged = [], []
    train(config(tmp_path), log=lambda *a, **k: logged.append(a[0]), status=shown.append)
    assert shown and all(line.startswith("step") for line in shown)
    assert not any(line.startswith("step") for line in logged)
    assert any(line.startswith("eval step") for line in logged)


def test_the_budget_is_never_silently_off():
    with pytest.raises(ValueError, match="--max-minutes"):
        TrainConfig(max_minutes=float("nan"))
    with pytest.raises(ValueError, match="--max-minutes"):
        TrainConfig(max_minutes=float("inf"))


# -- any labeled posts: --task classify ------------------------------------------------------

FIXTURES = ROOT / "tests" / "fixtures" / "tweeteval"


@pytest.mark.parametrize(("folder", "metric", "labels"), [
    ("hate", "macro_f1", ["not-hate", "hate"]),
    ("stance/abortion", "stance_f1", ["none", "against", "favor"]),
])  # fmt: skip
def test_classify_on_a_tweeteval_folder_selects_on_its_official_metric(tmp_path, capsys, folder,
                                                                       metric, labels):  # fmt: skip
    data = str(FIXTURES / folder)
    lines = []
    best = train(config(tmp_path, task="classify", data=(data,), val_fraction=0.3),
                 log=lambda *a, **k: lines.append(a[0]))  # fmt: skip
    ckpt = load_checkpoint(best)
    assert ckpt["label_names"] == labels and ckpt["metric"] == metric
    assert ckpt["train_config"]["metric"] == metric
    assert any(line.startswith("stopped after 6 steps (max steps) in") and f"best {metric}" in line
               for line in lines)  # fmt: skip
    if metric == "stance_f1":  # not among the usual scores: printed beside them
        assert any(line.startswith("eval step") and "stance_f1" in line for line in lines)
    from minillm.cli import sample

    assert sample.main(["--ckpt", str(best), "--evaluate", data, "--split", "train",
                        "--format", "json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["metric"] == metric and 0.0 <= report["score"] <= 1.0
    assert report["labels"] == labels


def test_metric_can_be_chosen_and_is_refused_for_a_language_model(tmp_path):
    best = train(config(tmp_path, task="classify", data=(str(FIXTURES / "hate"),),
                        val_fraction=0.3, metric="positive_f1"), log=quiet)  # fmt: skip
    assert load_checkpoint(best)["metric"] == "positive_f1"
    with pytest.raises(ValueError, match="--metric scores a classifier"):
        TrainConfig(metric="macro_f1")
    assert TrainConfig(task="sentiment").resolved().metric == "macro_recall"
    assert TrainConfig(task="classify", data=("a/irony", "b/hate")).resolved().metric == "macro_f1"


def test_a_two_class_model_saves_its_best_threshold_and_sample_py_uses_it(tmp_path, capsys):
    from minillm.cli import sample

    data = str(FIXTURES / "hate")
    lines = []
    best = train(config(tmp_path, task="classify", data=(data,), val_fraction=0.3),
                 log=lambda *a, **k: lines.append(a[0]))  # fmt: skip
    threshold = load_checkpoint(best)["threshold"]
    assert 0.0 <= threshold <= 1.0
    assert any(line.startswith("threshold: hate from probability") for line in lines)
    posts = tmp_path / "posts.txt"
    posts.write_text("i hate mondays\nlovely day\nyou people are the worst\n")

    def labels(*flags):
        assert sample.main(["--ckpt", str(best), "--classify-file", str(posts), *flags]) == 0
        return capsys.readouterr().out.split()

    assert labels("--threshold", "0.000001") == ["hate"] * 3  # everything flagged
    assert labels("--threshold", "0.999999") == ["not-hate"] * 3  # nothing flagged
    default = labels()  # the saved threshold decides, in text and in JSON alike
    assert sample.main(["--ckpt", str(best), "--classify-file", str(posts), "--format",
                        "jsonl"]) == 0  # fmt: skip
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == default
    for r in rows:
        assert r["label"] == ("hate" if r["probabilities"]["hate"] >= threshold else "not-hate")


def test_threshold_flags_that_cannot_work(tmp_path, capsys):
    from minillm.cli import sample

    assert sample.main(["--ckpt", str(tmp_path / "none.pt"), "--threshold", "1.5"]) == 2
    assert "--threshold must be a probability in (0, 1), got 1.5" in capsys.readouterr().err
    three = train(config(tmp_path, task="sentiment"), log=quiet)
    assert "threshold" not in load_checkpoint(three)
    assert sample.main(["--ckpt", str(three), "--classify", "hi", "--threshold", "0.3"]) == 2
    assert "--threshold applies to two-class models; this one has 3" in capsys.readouterr().err
