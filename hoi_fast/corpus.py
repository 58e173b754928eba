"""Real text for the n-gram experiment: loading, normalisation, vocabulary, split.

Sources
-------
``"builtin"`` (the default, no download)
    The documentation topics that ship with every CPython
    (:data:`pydoc_data.topics.topics`, the text behind ``help("if")``,
    ``help("class")``, ...; about 0.47 M characters of English prose about
    Python, with some inline code).  Topics are taken in sorted key order and
    joined with a blank line.  Within a topic, lines that are not prose are
    dropped first: reStructuredText heading underlines (a line made of one
    repeated character among ``* = - ~ ^``), grammar productions (lines
    containing ``::=``) and interactive-session lines (starting, after
    indentation, with ``>>>`` or ``...``).  The text therefore depends on the
    Python version; :attr:`Corpus.sha256` identifies it.
A path to a UTF-8 text file
    Decoded strictly (a byte-order mark is dropped).
A path to a folder
    Every ``*.txt`` file directly inside it, in sorted name order, each decoded
    as above, joined with a blank line.

Normalisation (in this order)
-----------------------------
1. Unicode NFC.
2. Every run of whitespace characters (``str.isspace``: spaces, tabs,
   newlines, ...) becomes one space; leading and trailing whitespace is
   removed.  Paragraph structure is not modelled.
3. Vocabulary, fixed once from the whole normalised text: a character is kept
   if it occurs at least ``max(2, ceil(MIN_FRACTION * len(text)))`` times,
   keeping at most ``MAX_KEPT`` of the most frequent ones (ties by code
   point).  Kept characters get codes ``0 .. V - 2`` in code-point order;
   every other character (and U+FFFD itself) is folded into one *other*
   symbol, code ``V - 1``, written :data:`OTHER` (U+FFFD REPLACEMENT
   CHARACTER).  The other symbol is always in the vocabulary, so
   ``V <= MAX_KEPT + 1 = 96``.

Split
-----
The encoded text is split once: the first ``1 - HELDOUT_FRACTION`` (80%) is
the *training part*, the rest the *held-out part*, which never trains
anything.  Real pools, fresh real text and synthetic-stream start contexts are
windows of the training part; held-out sets are windows of the held-out part.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from hoi_fast._validate import ConfigError

BUILTIN = "builtin"
OTHER = "\ufffd"
MIN_FRACTION = 2e-5
MAX_KEPT = 95
HELDOUT_FRACTION = 0.2

_WHITESPACE = re.compile(r"\s+")
_UNDERLINE = re.compile(r"^\s*([*=\-~^])\1*\s*$")


@dataclass(frozen=True, eq=False)
class Corpus:
    """A normalised, encoded corpus with its fixed vocabulary and split.

    Attributes
    ----------
    name : str
        ``"builtin"`` or the absolute path it was read from.
    symbols : tuple of str
        ``symbols[c]`` is the character of code ``c``; the last is :data:`OTHER`.
    codes : ndarray, shape (L,), int32
        The whole encoded text (read-only).
    split : int
        ``codes[:split]`` is the training part, ``codes[split:]`` the held-out part.
    sha256 : str
        Hash of the normalised text (UTF-8), for provenance.
    """

    name: str
    symbols: tuple
    codes: np.ndarray
    split: int
    sha256: str

    @property
    def vocab_size(self):
        """V, the number of symbols including the other symbol."""
        return len(self.symbols)

    @property
    def train(self):
        """The training part, int32 codes (read-only view)."""
        return self.codes[:self.split]

    @property
    def heldout(self):
        """The held-out part, int32 codes (read-only view)."""
        return self.codes[self.split:]

    @functools.cached_property
    def _lookup(self):
        return {ch: i for i, ch in enumerate(self.symbols[:-1])}

    def window(self, part, size, rng):
        """``size`` consecutive codes of ``part`` ("train" or "heldout") at a uniform offset.

        Parameters
        ----------
        part : {"train", "heldout"}
        size : int
            At most the part's length.
        rng : numpy.random.Generator
            One ``integers`` draw is taken from it.

        Returns
        -------
        ndarray, shape (size,), int32
            A writable copy.
        """
        text = self.train if part == "train" else self.heldout
        offset = int(rng.integers(0, text.shape[0] - size + 1))
        return text[offset:offset + size].copy()

    def check_sizes(self, train_chars, heldout_chars):
        """Raise :class:`ConfigError` if a part is too short for the requested sizes."""
        for what, size, setting in (("training", train_chars, "train_chars"),
                                    ("held-out", heldout_chars, "heldout_chars")):
            have = self.split if what == "training" else self.codes.shape[0] - self.split
            if size > have:
                raise ConfigError(
                    f"`ngram.corpus` {self.name!r} is too short: its {what} part has {have} "
                    f"characters but `ngram.{setting}` = {size}; use a longer corpus or lower `ngram.{setting}`"
                )


def normalize(text):
    """NFC and whitespace runs to one space (steps 1-2 of the module docstring)."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _prose_lines(topic):
    keep = []
    for line in topic.splitlines():
        stripped = line.lstrip()
        if _UNDERLINE.match(line) or "::=" in line or stripped.startswith((">>>", "...")):
            continue
        keep.append(line)
    return "\n".join(keep)


def builtin_text():
    """The raw built-in text: CPython's documentation topics, prose lines only."""
    from pydoc_data.topics import topics

    return "\n\n".join(_prose_lines(topics[key]) for key in sorted(topics))


def _read_file(path):
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"`ngram.corpus` file {path!r} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); re-encode it as UTF-8"
        ) from None


def read_text(source):
    """The raw text of ``source`` ("builtin", a file or a folder of .txt files)."""
    if source == BUILTIN:
        return builtin_text()
    if os.path.isfile(source):
        return _read_file(source)
    if os.path.isdir(source):
        names = sorted(n for n in os.listdir(source) if n.endswith(".txt")
                       and os.path.isfile(os.path.join(source, n)))
        if not names:
            raise ConfigError(
                f"`ngram.corpus` folder {source!r} holds no .txt files; add UTF-8 .txt files or point at a file"
            )
        return "\n\n".join(_read_file(os.path.join(source, n)) for n in names)
    raise ConfigError(
        f"`ngram.corpus` path {source!r} does not exist; give 'builtin', a UTF-8 text file or a folder of .txt files"
    )


def build_vocabulary(text):
    """Kept characters of a normalised text, in code-point order, plus :data:`OTHER`."""
    counts = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    counts.pop(OTHER, None)
    threshold = max(2, math.ceil(MIN_FRACTION * len(text)))
    frequent = sorted((ch for ch, n in counts.items() if n >= threshold), key=lambda ch: (-counts[ch], ch))
    return tuple(sorted(frequent[:MAX_KEPT])) + (OTHER,)


def _encode(text, symbols, lookup=None):
    lookup = lookup if lookup is not None else {ch: i for i, ch in enumerate(symbols[:-1])}
    other = len(symbols) - 1
    # Map through a code-point table: fast for the BMP-sized alphabets of text.
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.full(int(points.max()) + 1 if points.size else 1, other, np.int32)
    for ch, code in lookup.items():
        if ord(ch) < table.shape[0]:
            table[ord(ch)] = code
    return table[points] if points.size else np.zeros(0, np.int32)


@functools.lru_cache(maxsize=8)
def _load(key):
    text = normalize(read_text(key))
    if not text:
        raise ConfigError(
            f"`ngram.corpus` {key!r} holds no text after normalisation; give a file with some UTF-8 text"
        )
    symbols = build_vocabulary(text)
    codes = _encode(text, symbols)
    codes.setflags(write=False)
    split = int(round((1.0 - HELDOUT_FRACTION) * codes.shape[0]))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Corpus(key, symbols, codes, split, digest)


def load_corpus(source=BUILTIN):
    """Load, normalise and encode a corpus; cached per process and resolved path.

    Parameters
    ----------
    source : str
        ``"builtin"`` or a path to a UTF-8 text file or a folder of ``.txt`` files.

    Returns
    -------
    Corpus

    Raises
    ------
    hoi_fast._validate.ConfigError
        Missing path, folder without ``.txt`` files, invalid UTF-8 or no text.
    """
    if not isinstance(source, (str, os.PathLike)) or not str(source):
        raise ConfigError(f"`ngram.corpus` must be 'builtin' or a path, got {source!r}")
    source = str(source)
    key = source if source == BUILTIN else os.path.abspath(source)
    return _load(key)


def encode(text, corpus):
    """Normalise ``text`` and map it to ``corpus`` codes (unknown characters -> other).

    Returns
    -------
    ndarray, shape (L,), int32
    """
    if not isinstance(text, str):
        raise ValueError(f"`text` must be a str, got {type(text).__name__}")
    return _encode(normalize(text), corpus.symbols, corpus._lookup)


def decode(codes, corpus):
    """The string of ``codes`` (the other symbol is written :data:`OTHER`)."""
    codes = np.asarray(codes)
    if codes.ndim != 1 or (codes.size and (codes.dtype.kind not in "iu" or codes.min() < 0
                                           or codes.max() >= corpus.vocab_size)):
        raise ValueError(f"`codes` must be a 1-D int array with values in [0, {corpus.vocab_size})")
    return "".join(corpus.symbols[c] for c in codes.tolist())
