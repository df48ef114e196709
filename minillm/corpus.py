"""Prepared corpora: posts tokenised once into token shards, memory-mapped by every run.

For corpora larger than memory (a scrape of millions of posts), `prepare` reads the posts
a file and a post at a time (minillm.formats.iter_posts), normalises them as training
does, splits them by a hash of the text, trains the tokenizer on a bounded seeded sample
(or takes a checkpoint's) and writes the token streams as shards, as llm.c and nanochat
do: `train_000000.bin`, `val_000000.bin`, ... each a 256-byte header (magic, format
version, bytes per token, token count, the tokenizer's SHA-256) and then the tokens,
uint16 (uint32 when the vocabulary exceeds 65,536 ids). `corpus.json`, the manifest, is
written last; until it exists, `progress.json` says which shards are finished, and the
same command run again continues after them.

`open_corpus` is the other side: a `Dataset` whose streams are `TokenShards`, the
shards memory-mapped and read as one array, so `lm_batch` cuts the same windows from them
as from the same tokens in memory, and start-up takes seconds whatever the size.

Leaves out: reading file formats (minillm.formats), the in-memory path for small data
(minillm.data.prepare_data, which hands prepared folders to `open_corpus`) and batching
(minillm.data.lm_batch).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from minillm.checkpoint import write_atomic
from minillm.formats import DataError, Source, find_sources, iter_posts
from minillm.tokenizer import Tokenizer

MANIFEST, PROGRESS, TOKENIZER_FILE = "corpus.json", "progress.json", "tokenizer.json"
MAGIC, FORMAT_VERSION, HEADER_BYTES = b"MINILLM\x00", 1, 256
_HEADER = struct.Struct("<8sIIQ32s")  # magic, version, bytes per token, tokens, tokenizer hash


class CorpusError(DataError):
    """A prepared corpus that cannot be used as it is; the message names the file."""


# -----------------------------------------------------------------------------
# Shards: a header, then the tokens


def tokenizer_sha256(tokenizer: Tokenizer) -> str:
    """The SHA-256 of the tokenizer's JSON: two tokenizers with the same hash encode alike."""
    return hashlib.sha256(tokenizer.to_json().encode()).hexdigest()


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def write_shard(path: Path, parts: list[np.ndarray], tokenizer_hash: str) -> None:
    """Write one shard, the tokens of `parts` (arrays of one dtype) one after the other,
    atomically (`checkpoint.write_atomic`): a shard on disk is whole, and a full disk
    leaves no temporary file and one line naming the shard. The parts are not joined
    first, so writing costs no second copy of the shard in memory.
    """
    n_tokens = sum(len(part) for part in parts)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, parts[0].dtype.itemsize, n_tokens,
                          bytes.fromhex(tokenizer_hash))  # fmt: skip

    def write(f: BinaryIO) -> None:
        f.write(header.ljust(HEADER_BYTES, b"\x00"))
        for part in parts:
            f.write(part.tobytes())

    write_atomic(path, write)


def read_shard(path: Path, tokens: int, tokenizer_hash: str) -> np.ndarray:
    """The tokens of a shard, memory-mapped, after checking its header against what the
    manifest says it holds; a CorpusError naming the file if anything disagrees."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(_HEADER.size)
    except FileNotFoundError:
        raise CorpusError(f"{path}: shard missing (listed in {MANIFEST})") from None
    if len(head) < _HEADER.size or head[:8] != MAGIC:
        raise CorpusError(f"{path}: not a minillm token shard (no {MAGIC[:7].decode()} header)")
    _, version, itemsize, n_tokens, digest = _HEADER.unpack(head)
    if version != FORMAT_VERSION or itemsize not in (2, 4):
        raise CorpusError(f"{path}: shard format {version} with {itemsize}-byte tokens; this "
                          f"minillm reads format {FORMAT_VERSION}: prepare the corpus again")  # fmt: skip
    if size != HEADER_BYTES + n_tokens * itemsize:
        raise CorpusError(f"{path}: truncated or padded: {size:,} bytes, but its header says "
                          f"{n_tokens:,} tokens ({HEADER_BYTES + n_tokens * itemsize:,} bytes)")  # fmt: skip
    if n_tokens != tokens:
        raise CorpusError(f"{path}: holds {n_tokens:,} tokens, {MANIFEST} says {tokens:,}")
    if digest.hex() != tokenizer_hash:
        raise CorpusError(f"{path}: written with another tokenizer than {TOKENIZER_FILE}'s "
                          f"(hash {digest.hex()[:12]}, not {tokenizer_hash[:12]})")  # fmt: skip
    dtype = np.uint16 if itemsize == 2 else np.uint32
    if n_tokens == 0:  # np.memmap cannot map an empty range
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(n_tokens,))


class TokenShards:
    """Shards read as one 1-D token array: `len`, and indexing by an integer, a slice or
    an integer array (of any shape), which is what `lm_batch` and evaluation use. Only
    the tokens indexed are read from disk."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = [p for p in parts if len(p)]
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])  # (n_parts + 1,)
        self.dtype = self.parts[0].dtype if self.parts else np.dtype(np.uint16)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index):
        if isinstance(index, slice):
            index = np.arange(*index.indices(len(self)))
        index = np.asarray(index)
        if index.ndim == 0:
            return self[index[None]][0]
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"token index out of range [0, {len(self)})")
        part = np.searchsorted(self.starts, index, side="right") - 1
        out = np.empty(index.shape, dtype=self.dtype)
        for k in np.unique(part):
            where = part == k
            out[where] = self.parts[k][index[where] - self.starts[k]]
        return out


# -----------------------------------------------------------------------------
# Preparing: posts in, shards out


@dataclass(frozen=True)
class PrepareConfig:
    """One `minillm-prepare` run; the flags of minillm.cli.prepare."""

    data: tuple[str, ...]
    out: str
    val: tuple[str, ...] = ()
    val_fraction: float = 0.005
    split: tuple[str, ...] = ("train",)  # TweetEval folders: the splits to read
    text_field: str = "text"
    label_field: str = "label"
    normalize: bool = True
    tokenizer: str = "bpe"
    vocab_size: int = 8192
    tokenizer_from: str | None = None
    tokenizer_posts: int = 500_000
    shard_tokens: int = 100_000_000
    seed: int = 1337

    def check(self) -> None:
        """Every flag that can be checked before any file is read."""
        if not self.data:
            raise ValueError("--data: give at least one file or folder of posts")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.tokenizer == "bpe" and not 259 <= self.vocab_size <= 2**20:
            raise ValueError(f"--vocab-size must be in [259, 1048576], got {self.vocab_size}")
        for name in ("tokenizer_posts", "shard_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")


def post_in_val(text: str, val_fraction: float, seed: int) -> bool:
    """The split of a post: a keyed hash of its normalised text, as a number in [0, 1),
    below `val_fraction`. The same text lands on the same side, wherever it appears."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, key=seed.to_bytes(8, "little"))
    return int.from_bytes(digest.digest(), "little") < val_fraction * 2**64


def _fingerprint(cfg: PrepareConfig, sources: list[Source], val_sources: list[Source]) -> dict:
    """What a finished or interrupted prepare was made from: its options and its files."""

    def files(group: list[Source]) -> list[dict]:
        paths = [p for s in group for p in (s.path, s.labels_path) if p is not None]
        return [{"path": str(p), "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
                for p in paths]  # fmt: skip

    options = {k: v for k, v in asdict(cfg).items() if k not in ("data", "val", "out")}
    found = {"options": options, "sources": files(sources), "val_sources": files(val_sources)}
    return json.loads(json.dumps(found))  # as it reads back from a file: lists, not tuples


def _differs(old: dict, new: dict) -> str:
    """Why an interrupted prepare cannot be continued: the first thing that changed."""
    for key in ("sources", "val_sources"):
        if [s["path"] for s in old[key]] != [s["path"] for s in new[key]]:
            return "other files were named"
        for was, now in zip(old[key], new[key], strict=True):
            if was != now:
                return f"{now['path']} changed since"
    for name, value in new["options"].items():
        if old["options"].get(name) != value:
            return f"--{name.replace('_', '-')} was {old['options'].get(name)!r}, now {value!r}"
    return "it was made by another minillm"


def _write_json(path: Path, payload: dict) -> None:
    write_atomic(path, lambda f: f.write((json.dumps(payload, indent=1) + "\n").encode()))


class _Split:
    """One side of the split as it is written: posts, tokens and bytes so far, the tokens
    not yet in a shard, and the shards written."""

    def __init__(self, name: str, saved: dict | None = None) -> None:
        saved = saved or {}
        self.name = name
        self.posts, self.tokens, self.bytes = (
            saved.get(k, 0) for k in ("posts", "tokens", "bytes")
        )
        self.shards: list[dict] = list(saved.get("shards", []))
        self.pending: list[np.ndarray] = []
        self.pending_tokens = 0

    def add(self, tokens: np.ndarray, n_posts: int, n_bytes: int) -> None:
        self.pending.append(tokens)
        self.pending_tokens += len(tokens)
        self.posts, self.bytes = self.posts + n_posts, self.bytes + n_bytes

    def flush(self, out: Path, index: int, tokenizer_hash: str, dtype: np.dtype) -> None:
        if not self.pending_tokens:
            return
        name = f"{self.name}_{index:06d}.bin"
        write_shard(out / name, [part.astype(dtype, copy=False) for part in self.pending],
                    tokenizer_hash)  # fmt: skip
        self.shards.append({"file": name, "tokens": self.pending_tokens})
        self.tokens += self.pending_tokens
        self.pending, self.pending_tokens = [], 0

    def summary(self) -> dict:
        return {"posts": self.posts, "tokens": self.tokens, "bytes": self.bytes,
                "shards": self.shards}  # fmt: skip


def _posts(cfg: PrepareConfig, sources: list[Source], val_sources: list[Source],
           reports: list[dict], on_bytes) -> Iterator[tuple[str, bool]]:  # fmt: skip
    """Every post of the corpus once, as (normalised text, in validation), in file order:
    the --val files first (their texts then never reach training), else the hash split."""
    read = dict(normalize=cfg.normalize, text_field=cfg.text_field, label_field=cfg.label_field)
    val_texts: set[bytes] = set()
    val_files = {s.path.resolve() for s in val_sources}
    for source, in_val in [(s, True) for s in val_sources] + [
        (s, False) for s in sources if s.path.resolve() not in val_files
    ]:
        skipped: Counter = Counter()
        n = 0
        for post in iter_posts(source, skipped, on_bytes=on_bytes, **read):
            n += 1
            if val_sources:
                key = hashlib.blake2b(post.text.encode(), digest_size=16).digest()
                if in_val:
                    val_texts.add(key)
                elif key in val_texts:
                    skipped["text in --val"] += 1
                    continue
                yield post.text, in_val
            else:
                yield post.text, post_in_val(post.text, cfg.val_fraction, cfg.seed)
        reports.append({"path": str(source.path), "format": source.format, "posts": n,
                        "skipped": dict(skipped)})  # fmt: skip


class _Progress:
    """The one progress line: MB read, posts, tokens, MB/s and time left."""

    def __init__(self, total_bytes: int, status: Callable[[str], None] | None) -> None:
        self.total, self.read, self.t0 = total_bytes, 0, time.time()
        self.status, self.last = status, 0.0
        self.posts = self.tokens = 0

    def on_bytes(self, n: int) -> None:
        self.read += n

    def show(self) -> None:
        now = time.time()
        if self.status is None or now - self.last < 0.5:
            return
        self.last = now
        rate = self.read / max(now - self.t0, 1e-9)
        left = (self.total - self.read) / rate if rate else 0
        self.status(f"prepare: {self.read / 1e6:,.0f}/{self.total / 1e6:,.0f} MB read, "
                    f"{self.posts:,} posts, {self.tokens:,} tokens, {rate / 1e6:.1f} MB/s, "
                    f"~{left / 60:.0f} min {left % 60:02.0f} s left")  # fmt: skip


ENCODE_POSTS = 20_000  # posts encoded in one batch (the tokenizers library's threads)


def prepare(cfg: PrepareConfig, log=print, status: Callable[[str], None] | None = None,
            argv: list[str] | None = None) -> Path:  # fmt: skip
    """Prepare the corpus of `cfg` in `cfg.out`; returns the manifest's path. See the
    module docstring; `log` prints a line, `status` shows the progress line."""
    cfg.check()
    t0 = time.time()
    out = Path(cfg.out)
    sources, _ = find_sources(cfg.data, list(cfg.split))
    val_sources = find_sources(cfg.val, list(cfg.split) + ["val"])[0] if cfg.val else []
    fingerprint = _fingerprint(cfg, sources, val_sources)
    manifest_path, progress_path = out / MANIFEST, out / PROGRESS
    if manifest_path.exists():
        done = json.loads(manifest_path.read_text(encoding="utf-8"))
        if done.get("fingerprint") == fingerprint:
            log(f"prepare: {out} already holds this corpus ({manifest_path}); nothing to do")
            return manifest_path
        raise ValueError(f"--out {out} holds another prepared corpus ({manifest_path}): "
                         f"choose another --out, or remove that folder first")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.tmp"):  # a write cut short by a kill
        stale.unlink()

    saved = _resumable(out, fingerprint, log)
    total = sum(f["bytes"] for f in fingerprint["sources"] + fingerprint["val_sources"])
    progress = _Progress(total, status)
    reports: list[dict] = []
    stream = _posts(cfg, sources, val_sources, reports, progress.on_bytes)
    tokenizer = _tokenizer(cfg, out, saved)
    if tokenizer is None:  # trained on a sample of the first posts, which are then encoded
        first, tokenizer = _train_tokenizer(cfg, stream, out, log)
        stream = itertools.chain(first, stream)
        del first  # freed once the chain has gone past it
    tok_hash = tokenizer_sha256(tokenizer)
    dtype = token_dtype(tokenizer.vocab_size)
    train = _Split("train", saved and saved["train"])
    val = _Split("val", saved and saved["val"])
    posts_done = saved["posts_done"] if saved else 0
    if saved:
        for split in (train, val):  # finished shards: checked, then kept
            for shard in split.shards:
                read_shard(out / shard["file"], shard["tokens"], tok_hash)
        log(f"prepare: continuing after {len(train.shards)} finished shard(s) "
            f"({posts_done:,} posts) in {out}")  # fmt: skip

    n_seen, n_taken, shard_index = 0, posts_done, len(train.shards)
    eos = tokenizer.eos_id
    if val.tokens == 0 and not val.pending:  # the validation stream opens with an end-of-post
        val.add(np.array([eos], dtype=dtype), 0, 0)

    def encode(batch: list[tuple[str, bool]]) -> tuple[list, list]:
        ids = tokenizer.encode_batch([text for text, _ in batch])
        return ids, batch

    def take(result) -> None:
        """Add an encoded batch to the splits, post by post; a shard pair is cut right
        after the post that brings the training tokens to --shard-tokens, so the shards
        depend on the posts and the flags alone, not on how they were batched."""
        nonlocal n_taken
        ids, batch = result
        flat: dict[bool, list[int]] = {False: [], True: []}
        counts = {False: [0, 0], True: [0, 0]}  # posts, bytes

        def add_pending() -> None:
            for in_val, split in ((False, train), (True, val)):
                if counts[in_val][0]:
                    split.add(np.array(flat[in_val], dtype=dtype), *counts[in_val])
                flat[in_val], counts[in_val] = [], [0, 0]

        for row, (text, in_val) in zip(ids, batch, strict=True):
            flat[in_val].extend(row)
            flat[in_val].append(eos)
            counts[in_val][0] += 1
            counts[in_val][1] += len(text.encode()) + 1
            n_taken += 1
            if not in_val and train.pending_tokens + len(flat[False]) >= cfg.shard_tokens:
                add_pending()
                cut_shards()
        add_pending()
        progress.tokens = train.tokens + train.pending_tokens + val.tokens + val.pending_tokens

    def cut_shards(final: bool = False) -> None:
        """Write the pending tokens as shard pair `shard_index`, then the progress file
        that lets a rerun continue after it."""
        nonlocal shard_index
        for split in (train, val):
            split.flush(out, shard_index, tok_hash, dtype)
        shard_index += 1
        if not final:
            _write_json(progress_path, {"fingerprint": fingerprint, "tokenizer": tok_hash,
                                        "posts_done": n_taken, "train": train.summary(),
                                        "val": val.summary()})  # fmt: skip

    with ThreadPoolExecutor(1) as pool:  # encode one batch while the next is read
        running = None
        batch: list[tuple[str, bool]] = []
        for item in stream:
            n_seen += 1
            if n_seen <= posts_done:  # in a finished shard already
                continue
            batch.append(item)
            progress.posts = n_seen
            if len(batch) < ENCODE_POSTS:
                continue
            if running is not None:
                take(running.result())
            running, batch = pool.submit(encode, batch), []
            progress.show()
        if running is not None:
            take(running.result())
        if batch:
            take(encode(batch))
    cut_shards(final=True)
    if train.tokens == 0:
        raise DataError(f"{', '.join(cfg.data)}: no posts left for training after "
                        f"normalisation and the split")  # fmt: skip
    if val.posts == 0:
        raise DataError(f"{', '.join(cfg.val or cfg.data)}: no posts for validation; raise "
                        f"--val-fraction (now {cfg.val_fraction:g}) or give --val")  # fmt: skip
    seconds = time.time() - t0
    manifest = {
        "format": "minillm corpus",
        "format_version": FORMAT_VERSION,
        "minillm_version": _version(),
        "command": " ".join(argv) if argv is not None else " ".join(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fingerprint": fingerprint,
        "sources": reports,
        "normalize": cfg.normalize,
        "tokenizer": {
            "file": TOKENIZER_FILE,
            "kind": tokenizer.kind,
            "vocab_size": tokenizer.vocab_size,
            "sha256": tok_hash,
            "from": cfg.tokenizer_from,
        },
        "dtype": dtype.name,
        "train": train.summary(),
        "val": val.summary(),
    }
    _write_json(manifest_path, manifest)  # last: the corpus is finished
    progress_path.unlink(missing_ok=True)
    mb = total / 1e6
    log(f"prepared {out}: train {train.posts:,} posts, {train.tokens:,} tokens in "
        f"{len(train.shards)} shard(s); validation {val.posts:,} posts, {val.tokens:,} tokens; "
        f"{mb:,.1f} MB in {seconds:.0f} s ({mb / max(seconds, 1e-9):.1f} MB/s)")  # fmt: skip
    return manifest_path


def _version() -> str:
    from minillm import __version__

    return __version__


def _resumable(out: Path, fingerprint: dict, log) -> dict | None:
    """An interrupted prepare's progress in `out`, if this command can continue it; else
    its shards are removed, with one line saying why."""
    progress_path = out / PROGRESS
    leftovers = sorted(out.glob("train_*.bin")) + sorted(out.glob("val_*.bin"))
    saved = None
    if progress_path.exists():
        try:
            saved = json.loads(progress_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            saved = None
    why = None
    if saved is not None and saved.get("fingerprint") != fingerprint:
        why = _differs(saved["fingerprint"], fingerprint)
        saved = None
    elif saved is None and leftovers:
        why = "its progress file is missing"
    if why:
        log(f"prepare: starting clean in {out}: an interrupted prepare is there, but {why}")
    if saved is None:
        for path in [*leftovers, out / TOKENIZER_FILE, progress_path]:
            path.unlink(missing_ok=True)
    return saved


def _tokenizer(cfg: PrepareConfig, out: Path, saved: dict | None) -> Tokenizer | None:
    """The corpus's tokenizer when it is known before reading: --tokenizer-from's, or the
    one an interrupted prepare already trained; None when it must be trained."""
    if cfg.tokenizer_from:
        from minillm.checkpoint import load_checkpoint

        tokenizer = Tokenizer.from_json(load_checkpoint(cfg.tokenizer_from)["tokenizer"])
        write_atomic(out / TOKENIZER_FILE, lambda f: f.write(tokenizer.to_json().encode()))
        return tokenizer
    if saved is not None:
        tokenizer = Tokenizer.from_json((out / TOKENIZER_FILE).read_text(encoding="utf-8"))
        if tokenizer_sha256(tokenizer) != saved["tokenizer"]:
            raise CorpusError(f"{out / TOKENIZER_FILE}: not the tokenizer its shards were "
                              f"written with; remove {out} and prepare again")  # fmt: skip
        return tokenizer
    return None


def _train_tokenizer(cfg: PrepareConfig, stream: Iterator[tuple[str, bool]], out: Path,
                     log) -> tuple[list, Tokenizer]:  # fmt: skip
    """Read the first 2 x --tokenizer-posts training posts of `stream` (returned, to be
    encoded next) and
    train the tokenizer on a seeded sample of --tokenizer-posts of them (reservoir
    sampling): memory and time bounded, whatever the size of the corpus."""
    t0 = time.time()
    limit = 2 * cfg.tokenizer_posts
    first: list[tuple[str, bool]] = []
    sample: list[str] = []
    rng = random.Random(cfg.seed)
    n_train = 0
    for text, in_val in stream:
        first.append((text, in_val))
        if in_val:
            continue
        n_train += 1
        if len(sample) < cfg.tokenizer_posts:
            sample.append(text)
        else:  # reservoir sampling: each of the n_train posts kept with equal chance
            j = rng.randrange(n_train)
            if j < cfg.tokenizer_posts:
                sample[j] = text
        if n_train >= limit:
            break
    if not sample:
        raise DataError(f"{', '.join(cfg.data)}: no posts left for training after "
                        f"normalisation and the split")  # fmt: skip
    if cfg.tokenizer == "bpe":
        tokenizer = Tokenizer.train_bpe(sample, vocab_size=cfg.vocab_size)
    else:
        tokenizer = Tokenizer.train_char(sample)
    write_atomic(out / TOKENIZER_FILE, lambda f: f.write(tokenizer.to_json().encode()))
    log(f"tokenizer: {cfg.tokenizer}, {tokenizer.vocab_size:,} tokens, trained on {len(sample):,} "
        f"of the first {n_train:,} training posts in {time.time() - t0:.1f}s")  # fmt: skip
    return first, tokenizer


# -----------------------------------------------------------------------------
# Training from a prepared corpus


def is_prepared(path: str | Path) -> bool:
    """A folder that holds a prepared corpus, finished or not (its manifest, progress
    file or shards)."""
    path = Path(path)
    return path.is_dir() and (
        (path / MANIFEST).exists() or (path / PROGRESS).exists() or any(path.glob("train_*.bin"))
    )


def load_manifest(folder: Path) -> dict:
    """The manifest of a finished corpus; a CorpusError if the prepare did not finish."""
    path = folder / MANIFEST
    if not path.exists():
        raise CorpusError(f"{folder}: token shards but no {MANIFEST}: its prepare did not "
                          f"finish; run the same minillm-prepare command again to complete it")  # fmt: skip
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        for key in ("train", "val"):
            manifest[key]["shards"], manifest[key]["tokens"], manifest[key]["posts"]
        manifest["tokenizer"]["sha256"], manifest["fingerprint"]["sources"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise CorpusError(f"{path}: not a minillm corpus manifest ({err})") from None
    return manifest


def corpus_dataset(cfg, tokenizer: Tokenizer | None, log):
    """`prepare_data` for a run whose --data is a prepared corpus (a TrainConfig `cfg`):
    one folder, for a language model, carrying its own validation split."""
    folder = next(p for p in cfg.data if is_prepared(p))
    if len(cfg.data) > 1:
        others = ", ".join(p for p in cfg.data if p != folder)
        raise ValueError(f"--data {folder} is a prepared corpus and cannot be mixed with "
                         f"other --data ({others}): prepare them together with minillm-prepare")  # fmt: skip
    if cfg.val:
        raise ValueError(f"--val: the prepared corpus {folder} carries its own validation "
                         f"split (its val_*.bin shards); drop --val")  # fmt: skip
    if cfg.task != "lm":
        raise ValueError(f"--task {cfg.task}: a prepared corpus ({folder}) holds token streams "
                         f"for a language model (--task lm); give a classifier its labeled files")  # fmt: skip
    checkpoint = cfg.init_from or str(Path(cfg.out) / "last.pt")
    return open_corpus(folder, tokenizer, checkpoint, log)


def open_corpus(folder: str | Path, tokenizer: Tokenizer | None, checkpoint: str | None, log):
    """The `Dataset` of a prepared corpus: its tokenizer and memory-mapped streams.

    `tokenizer` is the checkpoint's a run starts from (`checkpoint` names it): it must be
    the corpus's. A source file changed since the corpus was prepared is a warning.
    """
    from minillm.data import Dataset

    folder = Path(folder)
    manifest = load_manifest(folder)
    tok_path = folder / TOKENIZER_FILE
    try:
        own = Tokenizer.from_json(tok_path.read_text(encoding="utf-8"))
    except Exception as err:  # OSError, or what tokenizers raises: plain Exceptions
        raise CorpusError(f"{tok_path}: cannot read the corpus's tokenizer ({err})") from None
    tok_hash = manifest["tokenizer"]["sha256"]
    if tokenizer_sha256(own) != tok_hash:
        raise CorpusError(f"{tok_path}: not the tokenizer of {folder / MANIFEST}")
    if tokenizer is not None and tokenizer_sha256(tokenizer) != tok_hash:
        raise CorpusError(
            f"{folder} was prepared with another tokenizer ({own.kind}, {own.vocab_size:,} "
            f"tokens, sha256 {tok_hash[:12]}) than {checkpoint}'s ({tokenizer.kind}, "
            f"{tokenizer.vocab_size:,} tokens, sha256 {tokenizer_sha256(tokenizer)[:12]}); "
            f"prepare it with --tokenizer-from {checkpoint}"
        )
    for source in manifest["fingerprint"]["sources"] + manifest["fingerprint"]["val_sources"]:
        path = Path(source["path"])
        try:
            stat = path.stat()
            changed = (stat.st_size, stat.st_mtime_ns) != (source["bytes"], source["mtime_ns"])
        except OSError:
            changed = False  # moved away: the shards are what counts
        if changed:
            log(f"warning: {path} changed since {folder} was prepared; the corpus holds the "
                f"posts as they were (prepare again to include the change)")  # fmt: skip
    streams = {}
    for name in ("train", "val"):
        parts = [read_shard(folder / s["file"], s["tokens"], tok_hash)
                 for s in manifest[name]["shards"]]  # fmt: skip
        streams[name] = TokenShards(parts)
        if len(streams[name]) != manifest[name]["tokens"]:
            raise CorpusError(f"{folder / MANIFEST}: {name} shards hold {len(streams[name]):,} "
                              f"tokens, the manifest says {manifest[name]['tokens']:,}")  # fmt: skip
    if len(streams["train"]) == 0 or manifest["val"]["posts"] == 0:
        raise CorpusError(f"{folder}: the corpus has no training or no validation posts")
    log(f"corpus: {folder}: {manifest['train']['posts']:,} train posts, "
        f"{len(streams['train']):,} tokens in {len(manifest['train']['shards'])} shard(s); "
        f"{manifest['val']['posts']:,} validation posts, {len(streams['val']):,} tokens "
        f"(memory-mapped)")  # fmt: skip
    return Dataset(own, None, streams["train"], streams["val"], manifest["val"]["bytes"])
