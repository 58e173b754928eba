"""Corpus loading, normalisation, vocabulary, split and errors."""

import numpy as np
import pytest

from hoi_fast import corpus
from hoi_fast._validate import ConfigError
from hoi_fast.experiments.ngram import NGramConfig
from hoi_fast.experiments.ngram import NGramExperiment


def test_builtin_corpus_is_english_prose_with_a_small_fixed_vocabulary():
    c = corpus.load_corpus()
    assert c is corpus.load_corpus("builtin")  # cached per process
    assert c.codes.shape[0] > 300_000 and c.codes.dtype == np.int32
    assert c.vocab_size <= corpus.MAX_KEPT + 1 and c.symbols[-1] == corpus.OTHER
    assert all(len(s) == 1 and s.isprintable() for s in c.symbols)
    assert list(c.symbols[:-1]) == sorted(c.symbols[:-1])
    text = corpus.decode(c.codes[:5000], c)
    assert "  " not in text and "\n" not in text and "::=" not in text
    assert text.count(" the ") > 20
    assert c.split == round(0.8 * c.codes.shape[0])
    assert c.train.shape[0] + c.heldout.shape[0] == c.codes.shape[0]
    assert not c.codes.flags.writeable


def test_normalisation_nfc_whitespace_and_rare_characters(tmp_path):
    body = ("abc " * 2000) + "e\u0301\t\n  x\u00e9 \u2603 \ufffd"  # combining accent, tab, snowman
    path = tmp_path / "t.txt"
    path.write_text(body, encoding="utf-8")
    c = corpus.load_corpus(str(path))
    text = corpus.decode(c.codes, c)
    # NFC makes both spellings of e-acute one symbol (seen twice: kept); whitespace
    # runs become one space; x, the snowman (seen once) and U+FFFD fold into other
    assert text.endswith("c \u00e9 \ufffd\u00e9 \ufffd \ufffd")
    assert c.symbols == (" ", "a", "b", "c", "\u00e9", corpus.OTHER)
    np.testing.assert_array_equal(corpus.encode("ab  \u2603", c), [1, 2, 0, 5])


def test_folder_of_txt_files_in_name_order(tmp_path):
    (tmp_path / "b.txt").write_text("world " * 50, encoding="utf-8")
    (tmp_path / "a.txt").write_text("hello " * 50, encoding="utf-8")
    (tmp_path / "skip.md").write_text("zzz", encoding="utf-8")
    c = corpus.load_corpus(str(tmp_path))
    text = corpus.decode(c.codes, c)
    assert text.startswith("hello") and text.endswith("world") and "z" not in text


def test_windows_are_drawn_from_the_right_part():
    c = corpus.load_corpus()
    rng = np.random.default_rng(0)
    w = c.window("heldout", 1000, rng)
    assert w.flags.writeable and w.shape == (1000,)
    held = c.heldout
    starts = np.flatnonzero(held[:-999] == w[0])
    assert any(np.array_equal(held[s:s + 1000], w) for s in starts)


@pytest.mark.parametrize("make, match", [
    (lambda p: str(p / "nope.txt"), r"`ngram.corpus` path .* does not exist"),
    (lambda p: str(p), r"`ngram.corpus` folder .* holds no .txt files"),
    (lambda p: (p / "e.txt").write_text(" \n\t ", encoding="utf-8") and str(p / "e.txt"),
     r"`ngram.corpus` .* holds no text after normalisation"),
    (lambda p: (p / "bad.txt").write_bytes(b"abc\xff\xfedef") and str(p / "bad.txt"),
     r"`ngram.corpus` file .* is not valid UTF-8 \(byte 0xff at offset 3\); re-encode"),
])
def test_corpus_errors_name_the_setting_and_the_fix(tmp_path, make, match):
    with pytest.raises(ConfigError, match=match):
        corpus.load_corpus(make(tmp_path))


def test_too_short_corpus_is_a_config_error(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("some text to model " * 100, encoding="utf-8")  # 1899 after stripping
    with pytest.raises(ConfigError, match=r"`ngram.corpus` .* training part has 1519 .* `ngram.train_chars` = 5000"):
        NGramExperiment(NGramConfig(corpus=str(path), train_chars=5000, heldout_chars=100))
    with pytest.raises(ConfigError, match=r"held-out part has 380 .* lower `ngram.heldout_chars`"):
        NGramExperiment(NGramConfig(corpus=str(path), train_chars=1000, heldout_chars=500))
    assert isinstance(ConfigError("x"), ValueError)


def test_encode_and_decode_validate():
    c = corpus.load_corpus()
    with pytest.raises(ValueError, match="`text` must be a str"):
        corpus.encode(b"bytes", c)
    with pytest.raises(ValueError, match="`codes` must be a 1-D int array"):
        corpus.decode([c.vocab_size], c)
    assert corpus.decode(corpus.encode("The if statement", c), c) == "The if statement"
