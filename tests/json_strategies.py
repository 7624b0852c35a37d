"""Hypothesis strategies shared by the property tests: any text, identifiers, JSON values."""

from __future__ import annotations

from hypothesis import strategies as st

#: Any Unicode text a model may answer (no lone surrogates: they are not valid UTF-8).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=10,
)  # fmt: skip
