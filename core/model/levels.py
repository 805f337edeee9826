"""Book levels held as two columns: :class:`Levels`, a read-only sequence of ``(price, size)`` pairs.

A feed that converts a message's prices and sizes column by column (the Binance replay
reader looks each column up in its value cache with one C call) hands the two tuples to
:class:`Levels` instead of zipping them into one pair per level; the book applies them
straight from the columns (:meth:`perpbot.core.book_side.BookSide.apply`). Everything else
reads a :class:`Levels` like the tuple of pairs it replaces: iteration, ``len``, indexing,
slicing, equality with a tuple of pairs, hashing and pickling.
"""

from __future__ import annotations

from collections.abc import Sequence


class Levels(Sequence):
    """``(price, size)`` book levels stored as a price column and a size column.

    :param prices: prices (USD per base unit, or the venue's quote currency), one per level.
    :param sizes: sizes (base units; 0 deletes the level in a delta), one per level, in the
        same order as ``prices``.
    :raises ValueError: the columns differ in length.

    ``Levels(ps, qs)`` equals ``tuple(zip(ps, qs))`` and hashes like it (and, like that
    tuple, differs from a list), so a :class:`~perpbot.core.model.BookDelta` compares the same whichever
    form its levels came in.
    """

    __slots__ = ("prices", "sizes")

    prices: tuple
    sizes: tuple

    def __init__(self, prices: tuple, sizes: tuple) -> None:
        if len(prices) != len(sizes):
            raise ValueError(f"levels: {len(prices)} prices but {len(sizes)} sizes")
        self.prices = prices
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.prices)

    def __bool__(self) -> bool:
        return bool(self.prices)

    def __iter__(self):
        return zip(self.prices, self.sizes)

    def __reversed__(self):
        return zip(reversed(self.prices), reversed(self.sizes))

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Levels(self.prices[i], self.sizes[i])
        return (self.prices[i], self.sizes[i])

    def __eq__(self, other) -> bool:
        if isinstance(other, Levels):
            return self.prices == other.prices and self.sizes == other.sizes
        if isinstance(other, tuple):
            return len(other) == len(self.prices) and other == tuple(zip(self.prices, self.sizes))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(zip(self.prices, self.sizes)))

    def __reduce__(self):
        return (Levels, (self.prices, self.sizes))

    def __repr__(self) -> str:
        return f"Levels({tuple(zip(self.prices, self.sizes))!r})"
