"""Valid UTF-8 while sampling: which tokens may come next, so generated text never holds
a broken character.

Holds `Utf8Guard`. A byte-level token can be any run of bytes -- half a Chinese character,
the last bytes of an emoji -- so a model can emit bytes that are not UTF-8 at all (a
character's first byte followed by the first byte of another), which decode to U+FFFD in
the middle of the text. The guard follows the bytes generated so far through UTF-8's
state machine (the well-formed byte sequences of the Unicode Standard, Table 3-7) and
allows only the tokens whose bytes keep the text valid, and end-of-post only between
characters; sampling then draws from the model's probabilities renormalised over those
tokens. When `max_new_tokens` runs out in the middle of a character, `state` says so
(non-zero), and `generate_text` leaves that character's first bytes out.

Leaves out: sampling itself (`minillm.model.sample_next_token`) and streaming the text
(`minillm.inference.generate_text`, which applies the guard).
"""

from __future__ import annotations

import torch

# The states of a UTF-8 decoder: 0 between characters; otherwise the bytes still to come.
# A continuation byte is 0x80-0xBF, but the one after E0, ED, F0 and F4 has a narrower
# range (no overlong forms, no UTF-16 surrogates, nothing above U+10FFFF).
# state -> (lowest byte, highest byte, state after it), for states 1-7
_CONTINUE = {
    1: (0x80, 0xBF, 0),  # one more byte
    2: (0x80, 0xBF, 1),  # two more
    3: (0x80, 0xBF, 2),  # three more
    4: (0xA0, 0xBF, 1),  # after E0
    5: (0x80, 0x9F, 1),  # after ED
    6: (0x90, 0xBF, 2),  # after F0
    7: (0x80, 0x8F, 2),  # after F4
}
N_STATES = 8


def next_state(state: int, byte: int) -> int:
    """The decoder's state after `byte`, or -1 where `byte` cannot come next."""
    if state == 0:  # the first byte of a character says how many follow
        if byte < 0x80:
            return 0
        if 0xC2 <= byte <= 0xDF:
            return 1
        if 0xE1 <= byte <= 0xEF and byte != 0xED:
            return 2
        if 0xF1 <= byte <= 0xF3:
            return 3
        return {0xE0: 4, 0xED: 5, 0xF0: 6, 0xF4: 7}.get(byte, -1)  # C0, C1, F5-FF: never
    low, high, after = _CONTINUE[state]
    return after if low <= byte <= high else -1


def transitions(tokenizer) -> torch.Tensor:
    """(N_STATES, vocab_size): the state after each token from each state, -1 = not allowed.

    Special tokens are never allowed, except end-of-post between characters."""
    rows = [[-1] * tokenizer.vocab_size for _ in range(N_STATES)]
    for token in range(tokenizer.vocab_size):
        data = tokenizer.token_bytes(token)  # b"" for a special token
        for start in range(N_STATES if data else 0):
            state = start
            for byte in data:
                state = next_state(state, byte)
                if state < 0:
                    break
            rows[start][token] = state
    rows[0][tokenizer.eos_id] = 0
    return torch.tensor(rows, dtype=torch.int8)


class Utf8Guard:
    """Which tokens may follow the text generated so far; `advance` after each token."""

    def __init__(self, tokenizer) -> None:
        self.table = transitions(tokenizer)
        self.state = 0  # generation starts between characters (after the prompt)

    def allowed(self) -> torch.Tensor:
        """(vocab_size,) bool: True for the tokens that keep the text valid UTF-8."""
        allowed = self.table[self.state] >= 0
        return allowed if allowed.any() else torch.ones_like(allowed)  # never a dead end

    def advance(self, token: int) -> None:
        """Follow `token`; a token the guard did not allow starts afresh between characters."""
        self.state = max(int(self.table[self.state, token]), 0)
