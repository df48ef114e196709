"""Hostile and careless input, by cause: each test holds for a whole class of input.

The second round of issue #28 (the first round's cases live with the modules they test).
Extend it: a new way to break minillm gets a test here in the class it belongs to, named
for what must hold ("nothing lost", "one line naming the file and field", ...).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from test_training import POSTS, ROOT, quiet
from test_training import config as training_config

from minillm import training
from minillm.checkpoint import load_checkpoint, save_checkpoint
from minillm.cli import sample as sample_cli
from minillm.cli import train as train_cli
from minillm.inference import running_versions
from minillm.model import MiniLM, ModelConfig
from minillm.resources import model_bytes
from minillm.run_folder import SET_ASIDE, RunFolderError, read_metrics
from minillm.tokenizer import Tokenizer
from minillm.training import TrainConfig, train

SHORT = dict(max_steps=4, eval_interval=2, log_interval=2, warmup_steps=1)


def config(tmp_path, name="run", **kw) -> TrainConfig:
    return training_config(tmp_path, name, **{**SHORT, **kw})


def again(cfg: TrainConfig, **kw) -> TrainConfig:
    return TrainConfig(**{**cfg.__dict__, **kw})


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# -- 1. --overwrite: the earlier run stays until the new one has saved a checkpoint ------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[TrainConfig, dict[str, bytes]]:
    """A finished run (its files as bytes), copied afresh by `earlier_run` for each test."""
    cfg = config(tmp_path_factory.mktemp("finished"))
    train(cfg, log=quiet)
    return cfg, snapshot(Path(cfg.out))


@pytest.fixture
def earlier_run(tmp_path, finished) -> tuple[TrainConfig, dict[str, bytes]]:
    cfg, files = finished
    out = tmp_path / "run"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    return again(cfg, out=str(out), overwrite=True), files


def fail_at_first_step(*args, **kwargs):
    raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")


@pytest.mark.parametrize(
    "how",
    ["a --data path that does not exist", "out of memory at step 1", "a non-finite loss at step 1",
     "a second Ctrl-C (stop without saving)"],
)  # fmt: skip
def test_overwrite_that_saves_nothing_puts_the_earlier_run_back(earlier_run, monkeypatch, how):
    cfg, before = earlier_run
    if how.startswith("a --data"):
        cfg = again(cfg, data=(str(Path(cfg.out).parent / "typo.csv"),))
    elif how.startswith("out of memory"):
        monkeypatch.setattr(training, "train_step", fail_at_first_step)
    elif how.startswith("a non-finite"):
        monkeypatch.setattr(training, "train_step", lambda *a, **k: float("nan"))
    else:

        def stopped(*args, **kwargs):
            raise training.Stopped("stopped without saving", signal.SIGINT)

        monkeypatch.setattr(training, "train_step", stopped)
    logged = []
    with pytest.raises((ValueError, RuntimeError, KeyboardInterrupt)):
        train(cfg, log=logged.append)
    assert snapshot(Path(cfg.out)) == before, "every file of the earlier run, byte for byte"
    assert not (Path(cfg.out) / SET_ASIDE).exists()
    assert any("earlier run's files are back" in line for line in logged), logged


def test_overwrite_replaces_the_earlier_run_once_the_new_one_saved(earlier_run, monkeypatch):
    cfg, before = earlier_run
    real_step, calls = training.train_step, {"n": 0}

    def nan_after_the_first_checkpoint(*args, **kwargs):
        calls["n"] += 1
        return real_step(*args, **kwargs) if calls["n"] <= 2 else float("nan")

    monkeypatch.setattr(training, "train_step", nan_after_the_first_checkpoint)
    with pytest.raises(training.TrainingError, match="loss became nan at step 3"):
        train(cfg, log=quiet)
    out = Path(cfg.out)
    assert load_checkpoint(out / "last.pt")["step"] == 2, "the new run's checkpoint stands"
    assert (out / "last.pt").read_bytes() != before["last.pt"]
    assert not (out / SET_ASIDE).exists() and "loss.png" not in snapshot(out)


def test_overwrite_that_succeeds_leaves_nothing_aside(earlier_run):
    cfg, before = earlier_run
    train(again(cfg, max_steps=2), log=quiet)
    out = Path(cfg.out)
    assert load_checkpoint(out / "best.pt")["step"] == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


@pytest.mark.slow
def test_overwrite_killed_before_its_first_checkpoint_is_undone_by_the_next_run(earlier_run):
    cfg, before = earlier_run
    out = Path(cfg.out)
    args = [sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--data", POSTS,
            "--max-steps", "5000", "--eval-interval", "5000", "--log-interval", "1",
            "--device", "cpu", "--out", str(out), "--overwrite"]  # fmt: skip
    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    try:
        for line in run.stdout:  # training, so its metrics.jsonl is written: kill -9 now
            if line.startswith("step"):
                break
        run.kill()
    finally:
        run.wait()
    assert not (out / "best.pt").exists() and (out / SET_ASIDE / "best.pt").exists()
    train(again(cfg, overwrite=False, resume=True, max_steps=cfg.max_steps), log=quiet)
    assert load_checkpoint(out / "last.pt")["step"] == cfg.max_steps, "resumed the earlier run"
    assert not (out / SET_ASIDE).exists()


# -- 2. a checkpoint's fields: each checked on load, one line naming the file and field --


def classifier_payload(labels=("negative", "positive")) -> dict:
    """A tiny untrained classifier's checkpoint fields, as training writes them."""
    tokenizer = Tokenizer.train_char(["just landed in paris", "love this", "worst ever 😍"])
    config = ModelConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2,
                         n_embd=16, n_classes=len(labels))  # fmt: skip
    torch.manual_seed(0)
    return {
        "model_config": asdict(config),
        "model": MiniLM(config).state_dict(),
        "tokenizer": tokenizer.to_json(),
        "label_names": list(labels),
        "threshold": 0.4,
        "metric": "macro_f1",
        "train_config": {"task": "classify", "normalize": True},
        "versions": running_versions(),
        "lm_head_trained": False,
    }


def bigger_tokenizer(p: dict) -> None:
    many = "".join(chr(0x4E00 + i) for i in range(100))  # 100 more characters than before
    p["tokenizer"] = Tokenizer.train_char([many, "just landed in paris"]).to_json()


def wrong_shape(p: dict) -> None:
    p["model"]["cls_head.bias"] = torch.zeros(5)


def nan_weight(p: dict) -> None:
    p["model"]["tok_emb.weight"][3, 1] = float("nan")


BAD_FIELDS = {
    "threshold nan": ("threshold", lambda p: p.update(threshold=float("nan"))),
    "threshold 5.0": ("threshold", lambda p: p.update(threshold=5.0)),
    "threshold as text": ("threshold", lambda p: p.update(threshold="0.4")),
    "threshold true": ("threshold", lambda p: p.update(threshold=True)),
    "threshold of a 3-class model": (
        "threshold",
        lambda p: p.update(classifier_payload(("a", "b", "c")), threshold=0.3),
    ),
    "label_names as text": ("label_names", lambda p: p.update(label_names="negative,positive")),
    "label_names of 3 for 2 classes": (
        "label_names",
        lambda p: p.update(label_names=["a", "b", "c"]),
    ),
    "label_names twice": ("label_names", lambda p: p.update(label_names=["a", "a"])),
    "label_names numbers": ("label_names", lambda p: p.update(label_names=[0, 1])),
    "tokenizer larger than the vocabulary": ("tokenizer", bigger_tokenizer),
    "tokenizer not JSON": ("tokenizer", lambda p: p.update(tokenizer="{not json")),
    "tokenizer a number": ("tokenizer", lambda p: p.update(tokenizer=42)),
    "vocab_size 10**12": ("model_config", lambda p: p["model_config"].update(vocab_size=10**12)),
    "block_size 10**12": ("model_config", lambda p: p["model_config"].update(block_size=10**12)),
    "n_layer 10**9": ("model_config", lambda p: p["model_config"].update(n_layer=10**9)),
    "n_head as text": ("model_config", lambda p: p["model_config"].update(n_head="2")),
    "dropout nan": ("model_config", lambda p: p["model_config"].update(dropout=float("nan"))),
    "an unknown key": ("model_config", lambda p: p["model_config"].update(flash=True)),
    "model_config a list": ("model_config", lambda p: p.update(model_config=[1, 2])),
    "a NaN weight": ("model", nan_weight),
    "a weight missing": ("model", lambda p: p["model"].pop("norm.weight")),
    "a weight of another shape": ("model", wrong_shape),
    "metric unknown": ("metric", lambda p: p.update(metric="vibes")),
    "versions a list": ("versions", lambda p: p.update(versions=["0.1"])),
    "train_config text": ("train_config", lambda p: p.update(train_config="lm")),
    "normalize as text": ("train_config", lambda p: p.update(train_config={"normalize": "no"})),
    "lm_head_trained as text": ("lm_head_trained", lambda p: p.update(lm_head_trained="yes")),
}


@pytest.fixture(params=list(BAD_FIELDS), ids=list(BAD_FIELDS))
def bad_checkpoint(request, tmp_path) -> tuple[str, str]:
    field, spoil = BAD_FIELDS[request.param]
    payload = classifier_payload()
    spoil(payload)
    return str(save_checkpoint(payload, tmp_path / "bad.pt")), field


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_sample_checks_every_field_of_a_checkpoint(capsys, bad_checkpoint):
    path, field = bad_checkpoint
    code = sample_cli.main(["--ckpt", path, "--classify", "love this"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", "no label printed from a spoilt file"
    assert f"{path}: field {field!r}" in one_error_line(err)


def test_init_from_checks_the_same_fields_before_reading_data(capsys, tmp_path, bad_checkpoint):
    path, field = bad_checkpoint
    code = train_cli.main(["--task", "classify", "--init-from", path, "--data",
                           str(tmp_path / "not-read.csv"), "--out", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"{path}: field {field!r}" in one_error_line(err)


def test_a_sound_checkpoint_passes_and_its_threshold_decides(capsys, tmp_path):
    path = str(save_checkpoint(classifier_payload(), tmp_path / "good.pt"))
    assert sample_cli.main(["--ckpt", path, "--classify", "love this"]) == 0
    label, probabilities, _ = capsys.readouterr().out.split("\t")
    p_positive = float(probabilities.split("positive ")[1].split(",")[0].rstrip(")"))
    assert label == ("positive" if p_positive >= 0.4 else "negative")


@pytest.mark.parametrize(
    "field, spoil",
    [("step", lambda c: c.update(step="3")), ("best_metric", lambda c: c.update(best_metric=float("nan"))),
     ("optimizer", lambda c: c.pop("optimizer")), ("train_config", lambda c: c["train_config"].update(lr=-1.0))],
)  # fmt: skip
def test_resume_checks_the_fields_it_reads(tmp_path, capsys, finished, field, spoil):
    cfg, files = finished
    out = tmp_path / "run"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    spoil(ckpt)
    save_checkpoint(ckpt, out / "last.pt")
    code = train_cli.main(["--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and f"{out / 'last.pt'}: field {field!r}" in one_error_line(err)


# -- 3. text on the command line is checked like text from a file --------------------

NOT_UTF8 = {"invalid start byte": b"\xff\xfe", "cut short": b"ok \xe4", "Latin-1": b"caf\xe9"}
TEXT_FLAGS = ["--prompt", "--classify", "--explain", "--attention"]


@pytest.mark.parametrize("flag", TEXT_FLAGS)
@pytest.mark.parametrize("raw", NOT_UTF8.values(), ids=list(NOT_UTF8))
def test_command_line_text_that_is_not_utf8_is_one_line_naming_the_flag(capsys, tmp_path, flag,
                                                                         raw):  # fmt: skip
    given = os.fsdecode(raw)  # what Python makes of such bytes in sys.argv
    code = sample_cli.main(["--ckpt", str(tmp_path / "missing.pt"), flag, given])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", "nothing echoed"
    assert one_error_line(err).startswith(f"error: {flag}: line 1: ")


def test_command_line_bytes_reach_the_check_from_a_real_shell(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "sample.py"), "--ckpt", str(tmp_path / "x.pt"),
                          "--prompt", os.fsdecode(b"\xff\xfe")], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 2 and run.stdout == ""
    assert (
        run.stderr.startswith("error: --prompt: line 1: UTF-16") and "Traceback" not in run.stderr
    )


# -- 8. two modes at once, or a flag of another mode: refused, naming both ---------------

MODE_ARGS = {
    "--classify": ["--classify", "hi"],
    "--classify-file": ["--classify-file", "posts.txt"],
    "--evaluate": ["--evaluate", "labeled.csv"],
    "--attention": ["--attention", "hi"],
    "--explain": ["--explain", "hi"],
}
PAIRS = [(a, b) for i, a in enumerate(MODE_ARGS) for b in list(MODE_ARGS)[i + 1 :]]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a} {b}" for a, b in PAIRS])
def test_two_modes_at_once_are_refused_naming_both(capsys, tmp_path, first, second):
    code = sample_cli.main(["--ckpt", str(tmp_path / "missing.pt"), *MODE_ARGS[second],
                            *MODE_ARGS[first]])  # fmt: skip
    err = one_error_line(capsys.readouterr().err)
    assert code == 2 and first in err and second in err and "missing.pt" not in err


# A flag, and a mode it does not serve (None: the default, text generation).
STRAY_FLAGS = [
    (["--plot", "cm.png"], None), (["--plot", "cm.png"], "--classify"),
    (["--split", "val"], "--classify-file"), (["--out", "a.png"], "--classify"),
    (["--out", "a.png"], None), (["--threshold", "0.3"], "--attention"),
    (["--threshold", "0.3"], None), (["--format", "json"], "--explain"),
    (["--prompt", "hi"], "--classify"), (["--temperature", "0"], "--evaluate"),
    (["--num-samples", "3"], "--explain"), (["--seed", "1"], "--attention"),
    (["--no-cache"], "--classify-file"), (["--max-new-tokens", "5"], "--classify"),
    (["--top-k", "5"], "--evaluate"), (["--top-p", "0.5"], "--classify"),
]  # fmt: skip


@pytest.mark.parametrize(("flag", "mode"), STRAY_FLAGS,
                         ids=[f"{f[0]} with {m or 'generation'}" for f, m in STRAY_FLAGS])  # fmt: skip
def test_a_flag_that_would_be_dropped_is_refused_naming_it(capsys, tmp_path, flag, mode):
    code = sample_cli.main(["--ckpt", str(tmp_path / "missing.pt"), *flag,
                            *(MODE_ARGS[mode] if mode else [])])  # fmt: skip
    err = one_error_line(capsys.readouterr().err)
    assert code == 2 and f"error: {flag[0]} applies to " in err and (mode is None or mode in err)
    assert not (tmp_path / "a.png").exists() and not Path("attention.png").exists()


# -- 4. a write that fails (full disk, file-size limit): one line naming the file --------

FILE_SIZE_LIMIT = """
import resource, sys, torch
from pathlib import Path
from minillm.checkpoint import save_checkpoint
from minillm.run_folder import MetricsLog

folder = Path(sys.argv[1])
save_checkpoint({"model": {"w": torch.zeros(10)}, "step": 1}, folder / "last.pt")
(folder / "metrics.jsonl").write_text("".join('{"step": %d}\\n' % i for i in range(9000)))
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, resource.RLIM_INFINITY))  # writes past it fail
big = {"model": {"w": torch.zeros(100_000)}}
for name, write in [("checkpoint", lambda: save_checkpoint(big, folder / "last.pt")),
                    ("metrics", lambda: MetricsLog(folder / "metrics.jsonl", resume_step=10**9))]:
    try:
        write()
    except ValueError as err:
        print(name, "error:", err)
"""


def test_writes_that_fail_name_the_file_and_leave_no_temporary_file(tmp_path):
    # A file-size limit fails a write as a full disk does: part-way, with an OSError.
    run = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "Traceback" not in run.stderr, run.stderr
    errors = dict(line.split(" error: ", 1) for line in run.stdout.splitlines())
    last, metrics = tmp_path / "last.pt", tmp_path / "metrics.jsonl"
    assert errors == {
        "checkpoint": f"{last}: could not be written (File too large); {last} is as it was",
        "metrics": f"{metrics}: could not be written (File too large)",
    }
    assert torch.load(last, weights_only=True)["step"] == 1, "the earlier file is whole"
    assert len(metrics.read_text().splitlines()) == 9000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "metrics.jsonl"]


def test_training_into_a_full_disk_ends_in_one_line(tmp_path, finished):
    cfg, files = finished
    limit = (len(files["best.pt"]) + len(files["last.pt"])) // 2  # best.pt fits, last.pt not

    def limit_file_size():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    out = tmp_path / "out"
    args = [sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--data", POSTS,
            "--max-steps", "2", "--eval-interval", "2", "--device", "cpu", "--out", str(out)]  # fmt: skip
    run = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         preexec_fn=limit_file_size, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert run.returncode == 2
    assert one_error_line(run.stderr) == (f"error: {out / 'last.pt'}: could not be written (File "
                                          f"too large); no earlier file was there\n")  # fmt: skip
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# -- 6. sizes with no upper bound: refused before any work, naming the flag --------------

HUGE = [
    ["--block-size", "1000000000"],
    ["--vocab-size", "1000000000"],
    ["--n-layer", "100000000"],
    ["--n-embd", "1000000", "--n-head", "2"],
    ["--batch-size", "1000000000"],
    ["--num-threads", str(10**6)],
]


@pytest.mark.parametrize("flags", HUGE, ids=[" ".join(f) for f in HUGE])
def test_a_size_the_machine_cannot_hold_is_refused_before_any_data_is_read(capsys, tmp_path,
                                                                            flags):  # fmt: skip
    missing = str(tmp_path / "not-read.csv")
    code = train_cli.main(["--preset", "tiny", "--data", missing, "--out", str(tmp_path / "o"),
                           *flags])  # fmt: skip
    err = one_error_line(capsys.readouterr().err)
    assert code == 2 and f"{flags[0]} {flags[1]}" in err and "not-read" not in err
    assert not (tmp_path / "o").exists()


def test_running_out_of_memory_building_the_model_is_one_line(capsys, tmp_path, monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 8796093022208 bytes")  # fmt: skip

    monkeypatch.setattr(training, "MiniLM", no_memory)
    code = train_cli.main(["--preset", "tiny", "--data", POSTS, "--device", "cpu",
                           "--out", str(tmp_path / "o")])  # fmt: skip
    err = one_error_line(capsys.readouterr().err)
    assert code == 2 and err.startswith("error: out of memory building the model on cpu: lower")


@pytest.mark.parametrize(
    "shape",
    [dict(), dict(pos="learned", norm="layernorm", mlp="gelu"), dict(n_classes=3),
     dict(n_layer=3, n_embd=48, n_head=4, block_size=100, vocab_size=300)],
)  # fmt: skip
def test_the_counted_model_size_is_the_built_models(shape):
    config = ModelConfig(**{**dict(vocab_size=512, block_size=64, n_layer=2, n_head=2,
                                   n_embd=64, n_classes=0), **shape})  # fmt: skip
    model = MiniLM(config)
    built = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    assert model_bytes(config) == built


# -- 7. input files: only ordinary files (or pipes) are read; every JSON refusal located --

NOT_FILES = {"/dev/zero": "is a device or socket", "/dev/urandom": "is a device or socket"}


@pytest.mark.parametrize("device", list(NOT_FILES))
def test_a_device_is_refused_as_data_or_posts_without_reading_it(capsys, tmp_path, device):
    if not Path(device).exists():
        pytest.skip(f"no {device} here")
    link = tmp_path / "posts.txt"
    link.symlink_to(device)  # a supported name, so only what it is can refuse it
    code = train_cli.main(["--preset", "tiny", "--data", str(link), "--out", str(tmp_path / "o")])
    assert code == 2
    assert (
        one_error_line(capsys.readouterr().err)
        == f"error: {link}: {NOT_FILES[device]}, not a file of posts\n"
    )
    checkpoint = save_checkpoint(classifier_payload(), tmp_path / "c.pt")
    code = sample_cli.main(["--ckpt", str(checkpoint), "--classify-file", device])
    assert code == 2 and f"{device}: {NOT_FILES[device]}" in one_error_line(capsys.readouterr().err)


def test_a_pipe_is_read_like_standard_input(capsys, tmp_path):
    checkpoint = save_checkpoint(classifier_payload(), tmp_path / "c.pt")
    read, write = os.pipe()
    os.write(write, b"love this\nworst ever\n")
    os.close(write)
    code = sample_cli.main(["--ckpt", str(checkpoint), "--classify-file", f"/dev/fd/{read}"])
    os.close(read)
    out = capsys.readouterr().out
    assert code == 0 and len(out.splitlines()) == 2


BAD_JSON = {
    "an integer of 5,000 digits": (
        '{"text": "hi", "label": %s}' % ("1" * 5000),
        "Exceeds the limit",
    ),
    "nested 100,000 deep": ('{"text": %s}' % ("[" * 100_000), "nested too deeply"),
    "cut short": ('{"text": "hi', "Unterminated string"),
}


@pytest.mark.parametrize(("line", "reason"), BAD_JSON.values(), ids=list(BAD_JSON))
def test_json_that_is_refused_in_any_way_names_file_and_line(capsys, tmp_path, line, reason):
    data = tmp_path / "posts.jsonl"
    data.write_text('{"text": "fine", "label": "a"}\n' + line + "\n")
    code = train_cli.main(["--preset", "tiny", "--data", str(data), "--out", str(tmp_path / "o")])
    err = one_error_line(capsys.readouterr().err)
    assert (
        code == 2 and err.startswith(f"error: {data}: line 2: malformed JSON: ") and reason in err
    )
    assert "set_int_max_str_digits" not in err


@pytest.mark.parametrize(("line", "reason"), BAD_JSON.values(), ids=list(BAD_JSON))
def test_a_metrics_line_refused_in_any_way_names_file_and_line(tmp_path, line, reason):
    path = tmp_path / "metrics.jsonl"
    path.write_text(line + '\n{"step": 1}\n')
    with pytest.raises(RunFolderError, match=rf"metrics.jsonl:1: not a JSON line \(.*{reason}"):
        read_metrics(path)


# -- 9. smaller: a folder given as a checkpoint --------------------------------------------


def test_a_folder_given_as_a_checkpoint_says_so_and_points_at_best_pt(capsys, tmp_path):
    save_checkpoint(classifier_payload(), tmp_path / "best.pt")
    code = sample_cli.main(["--ckpt", str(tmp_path), "--classify", "hi"])
    err = one_error_line(capsys.readouterr().err)
    assert code == 2
    assert (
        err
        == f"error: {tmp_path} is a folder, not a checkpoint file: did you mean {tmp_path / 'best.pt'}?\n"
    )


@pytest.mark.parametrize("same", ["the same file", "the same texts in another file"])
def test_val_that_is_all_of_data_says_why_in_the_error(capsys, tmp_path, same):
    val = POSTS
    if same != "the same file":
        val = tmp_path / "copy.csv"
        val.write_bytes(Path(POSTS).read_bytes())
    code = train_cli.main(["--preset", "tiny", "--data", POSTS, "--val", str(val),
                           "--out", str(tmp_path / "o")])  # fmt: skip
    err = one_error_line(capsys.readouterr().err)
    assert code == 2 and "posts of --data is in --val" in err


# -- 5. output that cannot be written: an error line and exit 2, never exit 0 -------------

FULL = Path("/dev/full")  # every write fails with "No space left on device"
COMMANDS = {
    "train.py --help": ["train.py", "--help"],
    "train.py --version": ["train.py", "--version"],
    "sample.py --help": ["sample.py", "--help"],
    "sample.py --version": ["sample.py", "--version"],
    "python -m minillm": ["-m", "minillm"],
    "python -m minillm --version": ["-m", "minillm", "--version"],
    "python -m minillm sample --help": ["-m", "minillm", "sample", "--help"],
}


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full here")
@pytest.mark.parametrize("args", COMMANDS.values(), ids=list(COMMANDS))
def test_output_into_a_full_device_is_an_error(args):
    with FULL.open("w") as full:
        run = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=full, stderr=subprocess.PIPE,
                             text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2
    assert one_error_line(run.stderr) == (
        "error: standard output cannot be written (No space left on device)\n"
    )


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full here")
def test_generated_text_into_a_full_device_is_an_error(tmp_path):
    payload = classifier_payload()
    payload.update(label_names=None, threshold=None, metric=None, lm_head_trained=True)
    config = ModelConfig(**{**payload["model_config"], "n_classes": 0})
    payload.update(model_config=asdict(config), model=MiniLM(config).state_dict())
    checkpoint = save_checkpoint(payload, tmp_path / "lm.pt")
    with FULL.open("w") as full:
        run = subprocess.run([sys.executable, "sample.py", "--ckpt", str(checkpoint), "--seed", "1"],
                             cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.endswith(
        "error: standard output cannot be written (No space left on device)\n"
    )
    assert "Traceback" not in run.stderr


# -- the README's promise: nothing non-finite is ever saved, metrics.jsonl included ---------


def strict_json(line: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"{constant} in metrics.jsonl")

    return json.loads(line, parse_constant=refuse)


@pytest.mark.parametrize(
    "objective, spoilt", [("causal", "loss"), ("masked", "masked_loss"), ("masked", "loss")]
)
def test_a_non_finite_validation_score_is_saved_nowhere(tmp_path, monkeypatch, objective, spoilt):
    real_evaluate, calls = training.evaluate, {"n": 0}

    def nan_at_second_evaluation(*args, **kwargs):
        scores = real_evaluate(*args, **kwargs)
        calls["n"] += 1
        return {**scores, spoilt: float("nan")} if calls["n"] == 2 else scores

    monkeypatch.setattr(training, "evaluate", nan_at_second_evaluation)
    cfg = config(tmp_path, objective=objective)
    with pytest.raises(training.TrainingError, match=f"validation {spoilt} became nan at step 4"):
        train(cfg, log=quiet)
    out = Path(cfg.out)
    rows = [strict_json(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows if r["kind"] == "val") == 2
    for name in ("best.pt", "last.pt"):
        ckpt = load_checkpoint(out / name)
        assert ckpt["step"] == 2 and all(math.isfinite(v) for v in ckpt["metrics"].values())
