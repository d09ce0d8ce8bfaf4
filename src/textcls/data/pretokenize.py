"""Texts to words with the rules of the `tokenizers` `Lowercase` normaliser and `Whitespace` pre-tokenizer, in pyarrow.

The exported tokenizer.json is served by `tokenizers`, so these rules are the contract: a word is a run of
Oniguruma's Unicode `\\w` (Alphabetic, marks, decimal digits, connector punctuation, joiners), a punctuation token is
a run of anything else that is not `White_Space`, and whitespace separates. RE2 (pyarrow's regex engine) has no
`Alphabetic` or `White_Space` property, so both are spelled out below; tests/unit/test_tokenizer.py compares every
code point with `tokenizers`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Unicode White_Space beyond ASCII (RE2's `\s` is ASCII-only; U+001C-U+001F are not White_Space).
UNICODE_SPACE = r"\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"
SPACE = r"\t\n\x{0B}\f\r " + UNICODE_SPACE
# Alphabetic = letters, letter numbers (Nl) and Other_Alphabetic: marks plus the circled / squared Latin letters.
WORD = (
    r"\pL\p{Nl}\pM\p{Nd}\p{Pc}\x{200C}\x{200D}"
    r"\x{24B6}-\x{24E9}\x{1F130}-\x{1F149}\x{1F150}-\x{1F169}\x{1F170}-\x{1F189}"
)
# Spaces around every punctuation run, then a split on whitespace: what is left between are the word runs. Matching
# only the punctuation runs keeps RE2 fast (one alternative instead of two).
PUNCTUATION_PATTERN = f"([^{WORD}{SPACE}]+)"
UNICODE_SPACE_PATTERN = f"[{UNICODE_SPACE}]"
# Rust's lowercase of U+0130 is two code points (i + combining dot above); utf8proc's is one.
DOTTED_CAPITAL_I = "\u0130"


def split_words(texts: pa.Array, lowercase: bool = True) -> pa.ListArray:
    """Split each text into word and punctuation tokens; null or blank texts give an empty list."""
    texts = pc.fill_null(texts.cast(pa.string()), "")
    if lowercase:
        texts = pc.utf8_lower(pc.replace_substring(texts, DOTTED_CAPITAL_I, "i\u0307"))
    spaced = pc.replace_substring_regex(texts, pattern=PUNCTUATION_PATTERN, replacement=r" \1 ")
    if pc.all(pc.string_is_ascii(spaced)).as_py() is False:
        # Arrow's Unicode split also breaks at U+001C-U+001F; its ASCII split after this replacement does not.
        spaced = pc.replace_substring_regex(spaced, pattern=UNICODE_SPACE_PATTERN, replacement=" ")
    words = pc.ascii_split_whitespace(pc.ascii_trim_whitespace(spaced))
    # A blank text splits into [""]; drop those and rebuild the offsets without a Python loop.
    flat = pc.list_flatten(words)
    keep = pc.not_equal(flat, "")
    if pc.all(keep).as_py() is not False:
        return words
    parents = pc.list_parent_indices(words).to_numpy()[keep.to_numpy(zero_copy_only=False)]
    counts = np.bincount(parents, minlength=len(words))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pc.filter(flat, keep))
