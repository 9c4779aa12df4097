"""CTC decoding of a text recogniser's per-step probabilities, optionally grammar-constrained.

PP-OCR recognisers (the model inside ``rapidocr``) output, for every horizontal step of the
line image, a probability over ~18,700 symbols (index 0 is the CTC blank).  Plates use 36 of
them, so :func:`collapse` folds the distribution onto ``blank + 0-9 + A-Z``: lower case adds to
upper case, and every other symbol (spaces, dots, dashes, CJK) counts as "nothing here", i.e. as
blank.  That alone removes separator noise such as ``H·8518`` or ``T-1329-KC``.

:func:`constrained_best_path` is a Viterbi search over the CTC alignment lattice intersected with
a plate automaton (:class:`etle.plate.tnkb.Automaton`): it returns the single most probable
alignment whose label sequence is a valid plate.  It is hand-written because no installed
library does CTC decoding under a regular grammar; it is a few vectorised NumPy lines per step,
well under a millisecond for a plate.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from etle.plate.tnkb import ALPHABET, Automaton

_NEG = -1e30


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded label sequence.

    ``logp`` is the log-probability of its best alignment; ``char_conf`` the highest probability
    each character reached over the steps that emitted it.
    """

    text: str
    logp: float
    char_conf: tuple[float, ...]

    @property
    def confidence(self) -> float:
        """Mean per-character probability (0 for an empty text)."""
        return float(np.mean(self.char_conf)) if self.char_conf else 0.0

    @property
    def min_conf(self) -> float:
        return float(min(self.char_conf)) if self.char_conf else 0.0


# Symbols of the recogniser's (Chinese + Latin) character set that are drawn like a plate
# character: Cyrillic/Greek capitals and a few signs the model picks for worn digits.
LOOKALIKES: dict[str, str] = {
    **dict(zip("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")),  # Cyrillic
    **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX")),  # Greek
    "∠": "4",
    "Ⅰ": "I",
    "Ⅴ": "V",
    "Ⅹ": "X",
}


def _plate_char(ch: str) -> str | None:
    if len(ch) != 1:
        return None
    if ch in LOOKALIKES:
        return LOOKALIKES[ch]
    up = ch.upper()
    if up.isascii() and up in ALPHABET:
        return up
    folded = unicodedata.normalize("NFKD", ch)[:1].upper()  # full-width forms, accents
    return folded if folded.isascii() and folded and folded in ALPHABET else None


def collapse_index(characters: Sequence[str]) -> np.ndarray:
    """Map each model class to ``0`` (blank/other) or ``1 + ALPHABET.index(symbol)``.

    ``characters`` is the model's class list *including* the blank at index 0.  Upper and lower
    case, full-width forms and the :data:`LOOKALIKES` map to the plate character they look like.
    """
    out = np.zeros(len(characters), dtype=np.int64)
    for i, ch in enumerate(characters):
        if i == 0:
            continue
        c = _plate_char(ch)
        if c is not None:
            out[i] = ALPHABET.index(c) + 1
    return out


def collapse(probs: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Fold ``(T, C)`` model probabilities onto ``(T, 1 + len(ALPHABET))`` (blank first)."""
    p = np.asarray(probs)
    cols = np.nonzero(index > 0)[0]
    fold = np.zeros((len(cols), 1 + len(ALPHABET)), dtype=np.float64)
    fold[np.arange(len(cols)), index[cols]] = 1.0
    out = p[:, cols].astype(np.float64) @ fold
    out[:, 0] = np.clip(1.0 - out[:, 1:].sum(axis=1), 0.0, 1.0)
    return out


#: Pairs of plate characters that are drawn (nearly) alike, with how much of one's probability
#: also counts for the other when a grammar asks for the other (see :func:`confusion_matrix`).
CONFUSIONS: tuple[tuple[str, str, float], ...] = (
    ("0", "O", 0.5), ("0", "D", 0.3), ("0", "Q", 0.3), ("O", "Q", 0.3), ("O", "D", 0.3),
    ("1", "I", 0.5), ("8", "B", 0.4), ("5", "S", 0.4), ("2", "Z", 0.4), ("6", "G", 0.4),
    ("4", "A", 0.2), ("7", "T", 0.2), ("C", "G", 0.2),
)


@lru_cache(maxsize=4)
def confusion_matrix(pairs: tuple[tuple[str, str, float], ...] = CONFUSIONS) -> np.ndarray:
    """``(1+K, 1+K)`` matrix M with ``smoothed = probs @ M`` (identity plus the weighted pairs)."""
    k1 = 1 + len(ALPHABET)
    m = np.eye(k1)
    for a, b, w in pairs:
        ia, ib = ALPHABET.index(a) + 1, ALPHABET.index(b) + 1
        m[ia, ib] = max(m[ia, ib], w)
        m[ib, ia] = max(m[ib, ia], w)
    return m


def smooth_confusions(probs: np.ndarray, pairs: tuple[tuple[str, str, float], ...] = CONFUSIONS) -> np.ndarray:
    """Let look-alike characters share probability: ``p'(O) = max(p(O), 0.5 p(0))``-style.

    The recogniser is trained on text where 0 and O differ; on plates they are often the same
    glyph, so a grammar that asks for a letter where the model saw the digit should pay little.
    Uses a max over the weighted sources (not a sum) so that no symbol gains more than it had.
    """
    p = np.asarray(probs, dtype=np.float64)
    m = confusion_matrix(pairs)
    return (p[:, :, None] * m[None, :, :]).max(axis=1)


def greedy(probs: np.ndarray) -> Decoded:
    """Best-path decoding of collapsed ``(T, 1+K)`` probabilities (argmax, merge repeats, drop blanks)."""
    p = np.asarray(probs)
    if p.size == 0:
        return Decoded("", 0.0, ())
    idx = p.argmax(axis=1)
    best = p[np.arange(len(idx)), idx]
    logp = float(np.log(np.maximum(best, 1e-12)).sum())
    chars: list[str] = []
    confs: list[float] = []
    prev = 0
    for k, prob in zip(idx.tolist(), best.tolist()):
        if k != 0 and k != prev:
            chars.append(ALPHABET[k - 1])
            confs.append(prob)
        elif k != 0 and k == prev:
            confs[-1] = max(confs[-1], prob)
        prev = k
    return Decoded("".join(chars), logp, tuple(confs))


def squeeze_blanks(probs: np.ndarray, certain: float = 0.999) -> np.ndarray:
    """Shorten runs of steps that are blank with near certainty to one step each.

    Such steps cannot emit anything worth keeping, and one of them is enough to separate a
    repeated symbol, so the search space shrinks ~2-3x without changing the answer in practice.
    """
    p = np.asarray(probs)
    if p.shape[0] < 2:
        return p
    sure = p[:, 0] >= certain
    keep = ~sure
    keep[1:] |= sure[1:] & ~sure[:-1]
    keep[0] |= sure[0]
    return p[keep]


def constrained_best_path(probs: np.ndarray, automaton: Automaton) -> Decoded | None:
    """The most probable CTC alignment whose labels the automaton accepts; ``None`` if none fits.

    State: (automaton state q, label of the current step: 0 blank or k symbol).  Per step:
    blank keeps q; repeating the current symbol keeps q and emits nothing; a new symbol ``k``
    (different from the previous step's label, or after a blank) moves q along the automaton.
    """
    lp = np.log(np.maximum(squeeze_blanks(np.asarray(probs, dtype=np.float64)), 1e-12))
    t_len, k1 = lp.shape
    if t_len == 0:
        return None
    n_q = automaton.n_states
    table = automaton.table  # (Q, K)
    src_q, sym = np.nonzero(table >= 0)
    dst_q = table[src_q, sym]
    col = sym + 1
    flat_dst = dst_q * k1 + col

    v = np.full((n_q, k1), _NEG)
    v[automaton.start, 0] = lp[0, 0]
    from_start = table[automaton.start] >= 0
    starts = np.nonzero(from_start)[0]
    v[table[automaton.start, starts], starts + 1] = lp[0, starts + 1]
    # back pointers: previous (q, label) of each (q, label) at each step
    back_q = np.zeros((t_len, n_q, k1), dtype=np.int32)
    back_c = np.zeros((t_len, n_q, k1), dtype=np.int32)
    emitted = np.zeros((t_len, n_q, k1), dtype=bool)
    emitted[0, table[automaton.start, starts], starts + 1] = True
    rows = np.arange(n_q)

    for t in range(1, t_len):
        new = np.full((n_q, k1), _NEG)
        bq = np.repeat(rows[:, None], k1, axis=1).astype(np.int32)
        bc = np.repeat(np.arange(k1)[None, :], n_q, axis=0).astype(np.int32)
        em = np.zeros((n_q, k1), dtype=bool)
        # blank: from any label in the same state
        arg = v.argmax(axis=1)
        new[:, 0] = v[rows, arg] + lp[t, 0]
        bc[:, 0] = arg
        # repeat the same symbol: same state, same label, nothing emitted
        new[:, 1:] = v[:, 1:] + lp[t, 1:]
        # emit a new symbol: best previous label other than that symbol
        top2 = np.argsort(v, axis=1)[:, -2:]
        first, second = top2[:, 1], top2[:, 0]
        prev_lab = np.where(first[src_q] == col, second[src_q], first[src_q])
        score = v[src_q, prev_lab] + lp[t, col]
        # keep, per destination cell, the best source: sort by cell then by descending score
        order = np.lexsort((-score, flat_dst))
        f_sorted = flat_dst[order]
        grp_start = np.r_[0, np.nonzero(np.diff(f_sorted))[0] + 1]
        src_idx = order[grp_start]
        best_in_grp = score[src_idx]
        cells = f_sorted[grp_start]
        cq, cc = cells // k1, cells % k1
        better = best_in_grp > new[cq, cc]
        cq, cc, src_idx = cq[better], cc[better], src_idx[better]
        new[cq, cc] = best_in_grp[better]
        bq[cq, cc] = src_q[src_idx]
        bc[cq, cc] = prev_lab[src_idx]
        em[cq, cc] = True
        back_q[t], back_c[t], emitted[t] = bq, bc, em
        v = new

    acc = np.array(sorted(automaton.accept))
    sub = v[acc]
    if sub.max() <= _NEG / 2:
        return None
    qi, ci = np.unravel_index(int(sub.argmax()), sub.shape)
    q, c = int(acc[qi]), int(ci)
    logp = float(v[q, c])
    chars: list[str] = []
    confs: list[float] = []
    run_max = 0.0
    for t in range(t_len - 1, -1, -1):
        if c != 0:
            run_max = max(run_max, float(np.exp(lp[t, c])))
            if emitted[t, q, c]:
                chars.append(ALPHABET[c - 1])
                confs.append(run_max)
                run_max = 0.0
        else:
            run_max = 0.0
        if t == 0:
            break
        q, c = int(back_q[t, q, c]), int(back_c[t, q, c])
    return Decoded("".join(reversed(chars)), logp, tuple(reversed(confs)))


@lru_cache(maxsize=256)
def string_automaton(text: str) -> Automaton:
    """An automaton that accepts exactly ``text`` (for forced alignment)."""
    n = len(text)
    table = np.full((n + 1, len(ALPHABET)), -1, dtype=np.int32)
    for i, c in enumerate(text):
        table[i, ALPHABET.index(c)] = i + 1
    return Automaton(table=table, start=0, accept=frozenset({n}))


def align(probs: np.ndarray, text: str) -> Decoded | None:
    """Best alignment of a given text (A-Z0-9) with the probabilities; ``None`` if it cannot fit.

    Its ``logp`` tells how well ``text`` explains the image, which makes readings from different
    decoders (or repaired by hand) comparable on one scale.
    """
    if not text or any(c not in ALPHABET for c in text):
        return None
    return constrained_best_path(probs, string_automaton(text))


def forced_align(probs: np.ndarray, text: str) -> Decoded | None:
    """The best CTC alignment of ``text`` with ``(T, 1+K)`` probabilities; ``None`` if it cannot fit.

    The same result as :func:`align` (a Viterbi pass over the text's blank-interleaved label
    sequence) at a fraction of its cost, since the lattice is only ``2L+1`` states wide; the
    readers score every candidate on every view with it.
    """
    if not text or any(c not in ALPHABET for c in text):
        return None
    lp = np.log(np.maximum(np.asarray(probs, dtype=np.float64), 1e-12))
    t_len = lp.shape[0]
    ext = np.zeros(2 * len(text) + 1, dtype=np.int64)
    ext[1::2] = [ALPHABET.index(c) + 1 for c in text]
    n = len(ext)
    skip = np.zeros(n, dtype=bool)  # s may come from s-2: a symbol unlike the one before the blank
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    v = np.full(n, -np.inf)
    v[0] = lp[0, 0]
    if n > 1:
        v[1] = lp[0, ext[1]]
    back = np.zeros((t_len, n), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    lab = lp[:, ext]
    one = np.full(n, -np.inf)
    two = np.full(n, -np.inf)
    no_skip = ~skip
    for t in range(1, t_len):
        one[1:] = v[:-1]
        two[2:] = v[:-2]
        two[no_skip] = -np.inf
        move = back[t]
        best = v.copy()
        m = one > best
        best[m] = one[m]
        move[m] = 1
        m = two > best
        best[m] = two[m]
        move[m] = 2
        v = best + lab[t]
    ends = [n - 1, n - 2] if n > 1 else [n - 1]
    s = max(ends, key=lambda i: v[i])
    if not np.isfinite(v[s]):
        return None
    logp = float(v[s])
    confs = [0.0] * len(text)
    for t in range(t_len - 1, -1, -1):
        if s % 2 == 1:
            k = s // 2
            confs[k] = max(confs[k], float(np.exp(lp[t, ext[s]])))
        s -= int(back[t, s])
    return Decoded(text, logp, tuple(confs))
