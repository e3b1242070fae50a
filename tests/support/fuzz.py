"""Fuzz input for the codec tests: real frames with a few random edits."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], insert: st.SearchStrategy[bytes]) -> bytes:
    """One of ``seeds`` after 1 to 4 bit flips, cuts, insertions (from ``insert``) or deletions."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(insert)
        elif data:
            del data[position]
    return bytes(data)
