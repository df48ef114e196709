"""Turning text into token ids and back: a byte-level BPE and a character-level tokenizer.

Holds: `Tokenizer`, one class for both kinds, built on the Hugging Face `tokenizers`
library so both are trained, run and saved the same way:
  * `Tokenizer.train_bpe(texts, vocab_size)` -- byte-level BPE, as in GPT-2: text is
    split into UTF-8 bytes, and the most frequent adjacent pairs are merged into new
    tokens until the vocabulary is full. Any text can be encoded, since every byte is a
    token.
  * `Tokenizer.train_char(texts)` -- one token per character seen in training, for
    teaching. A character it never saw is encoded as its UTF-8 bytes (256 byte tokens
    `<0x00>`..`<0xFF>`), so nothing crashes and decoding still gives the text back.
Both have three special tokens: `<|pad|>` (id 0, fills out batches), `<|eos|>` (id 1,
ends every post) and `<|mask|>` (id 2, stands in for the hidden tokens of the masked-token
objective; tokenizers saved before it existed have only the first two). For any text, `decode(encode(text)) == text` exactly: no normaliser,
no added prefix space, no trimming. A tokenizer is saved as the library's JSON string
(`to_json` / `from_json`), never pickled, so a checkpoint can carry it as plain text.

BPE training reads at most the first `BPE_TRAINING_CHARS` characters of each text: the
`tokenizers` trainer's time grows with the square of a word it cannot split, such as a
long run of one character (a 5 MB post would take hours), and one huge post should not
choose the vocabulary for all the others.

Leaves out: text normalisation (`minillm/normalize.py`: applied to posts before they
reach the tokenizer), hand-written BPE, and special tokens beyond the three above.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence, Sized

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from minillm.progress import is_terminal

PAD = "<|pad|>"
EOS = "<|eos|>"
MASK = "<|mask|>"
SPECIAL_TOKENS = [PAD, EOS, MASK]  # in id order: pad is 0, eos is 1, mask is 2
# What BPE training reads of one text: far above any tweet or review, so those are read
# whole, yet the trainer's worst case (a 20,000-character run of one emoji) stays seconds.
BPE_TRAINING_CHARS = 20_000


def _byte_level_alphabet() -> dict[str, int]:
    """Byte-level BPE's printable stand-in for each byte (GPT-2's `bytes_to_unicode`):
    printable Latin-1 bytes stand for themselves, the other 68 for chr(256), chr(257), ...
    Returned the other way round: stand-in character -> byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    others = [b for b in range(256) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(others)}


_BYTE_OF = _byte_level_alphabet()


def _char_token_bytes(token: str) -> bytes:
    """The bytes a character tokenizer's token stands for: <0xE4> is b"\\xe4"."""
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        return bytes([int(token[3:5], 16)])
    return token.encode()


class Tokenizer:
    """A trained tokenizer: `encode`, `encode_batch`, `decode`, and JSON to save it in."""

    def __init__(self, tok: tokenizers.Tokenizer) -> None:
        self._tok = tok
        # Text that happens to spell "<|eos|>" is encoded as ordinary characters: only
        # the code that joins posts puts real end-of-post ids in. (Not kept in the JSON.)
        self._tok.encode_special_tokens = True
        self._pad_id = tok.token_to_id(PAD)
        self._eos_id = tok.token_to_id(EOS)
        if self._pad_id is None or self._eos_id is None:
            raise ValueError(f"tokenizer has no {PAD} or {EOS} token")
        self._mask_id = tok.token_to_id(MASK)  # None in a tokenizer saved before <|mask|>
        self._special_ids = {
            i for i in (self._pad_id, self._eos_id, self._mask_id) if i is not None
        }
        # The character tokenizer's tokens as UTF-8 bytes (a byte token <0xE4> is 0xE4), for
        # `decode`: the library's ByteFallback decoder turns a whole run of byte tokens into
        # U+FFFDs when any of it is invalid, so a character decoded from the run's start
        # would turn into U+FFFD again once a bad byte follows (streaming needs it to stay).
        self._char_bytes = None
        if self.kind == "char":
            vocab = tok.get_vocab(with_added_tokens=False)
            self._char_bytes = {i: _char_token_bytes(t) for t, i in vocab.items()}

    # -- building ---------------------------------------------------------------

    @classmethod
    def train_bpe(
        cls, texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2
    ) -> Tokenizer:
        """Train byte-level BPE on `texts`: 3 special tokens, 256 byte tokens, then merges.

        A pair seen fewer than `min_frequency` times is never merged, so on a small
        corpus the vocabulary may stop short of `vocab_size`. Only the first
        `BPE_TRAINING_CHARS` characters of a text are read (the tokenizer still encodes
        all of it). The trainer's progress bars show when stderr is a terminal.
        """
        n_base = len(SPECIAL_TOKENS) + 256
        if vocab_size < n_base:
            raise ValueError(f"vocab_size must be at least {n_base} (specials + bytes)")
        tok = tokenizers.Tokenizer(models.BPE())
        # Split before merging, GPT-2 style, so merges never cross word edges; no prefix
        # space is added, so a leading space in a post is kept, not invented.
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes
            show_progress=is_terminal(sys.stderr),
        )
        length = len(texts) if isinstance(texts, Sized) else None  # for the progress bar
        tok.train_from_iterator((text[:BPE_TRAINING_CHARS] for text in texts), trainer=trainer,
                                length=length)  # fmt: skip
        return cls(tok)

    @classmethod
    def train_char(cls, texts: Iterable[str], min_frequency: int = 1) -> Tokenizer:
        """One token per character seen at least `min_frequency` times, plus 256 bytes.

        Ids: the 3 special tokens, then the byte tokens `<0x00>`..`<0xFF>`, then the
        characters in code-point order. Built as a BPE model with no merges and
        `byte_fallback`, which is exactly "look each character up, else use its bytes".
        """
        counts = Counter(char for text in texts for char in text)
        vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
        for byte in range(256):
            vocab[f"<0x{byte:02X}>"] = len(vocab)
        for char in sorted(counts):
            if counts[char] >= min_frequency:
                vocab[char] = len(vocab)
        tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True))
        # ByteFallback turns runs of byte tokens back into characters (U+FFFD for a run
        # that is not valid UTF-8); Fuse joins everything into one string.
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
        tok.add_special_tokens(SPECIAL_TOKENS)
        return cls(tok)

    # -- saving -----------------------------------------------------------------

    def to_json(self) -> str:
        """The whole tokenizer as a JSON string (the `tokenizers` library's format)."""
        return self._tok.to_str()

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """Rebuild a tokenizer saved with `to_json`."""
        return cls(tokenizers.Tokenizer.from_str(text))

    # -- using ------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """ "bpe" or "char"."""
        return "bpe" if isinstance(self._tok.decoder, decoders.ByteLevel) else "char"

    @property
    def vocab_size(self) -> int:
        """Number of token ids, special tokens included: ids lie in [0, vocab_size)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def pad_id(self) -> int:
        return self._pad_id

    @property
    def eos_id(self) -> int:
        return self._eos_id

    @property
    def mask_id(self) -> int:
        """The id of `<|mask|>`; a ValueError for a tokenizer saved before it existed."""
        if self._mask_id is None:
            raise ValueError(f"this tokenizer has no {MASK} token (it predates the masked-token "
                             "objective): train a new one")  # fmt: skip
        return self._mask_id

    @property
    def n_special(self) -> int:
        """How many special tokens lead the vocabulary: ids below it are never text."""
        return len(self._special_ids)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, with no special tokens added."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` for many texts at once (the library spreads them over CPU threads)."""
        return [enc.ids for enc in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes token `token_id` stands for (part of a character, maybe);
        b"" for a special token or an id outside [0, vocab_size)."""
        if token_id in self._special_ids or not 0 <= token_id < self.vocab_size:
            return b""
        if self._char_bytes is not None:
            return self._char_bytes[token_id]
        return bytes(_BYTE_OF[c] for c in self._tok.id_to_token(token_id))

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`. Never raises for integer ids.

        Special ids and ids outside [0, vocab_size) are skipped; bytes that do not form
        whole UTF-8 characters (a sequence cut mid-emoji) become U+FFFD, one for each
        longest piece that could start a character, as Python's `errors="replace"` does:
        so the text of a sequence of ids begins with the text of each of its prefixes,
        minus any trailing U+FFFD.
        """
        if hasattr(ids, "tolist"):  # a tensor or array
            ids = ids.tolist()
        keep = [
            int(i) for i in ids if 0 <= int(i) < self.vocab_size and int(i) not in self._special_ids
        ]
        if self._char_bytes is not None:
            return b"".join(self._char_bytes[i] for i in keep).decode("utf-8", "replace")
        return self._tok.decode(keep, skip_special_tokens=True)

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"
