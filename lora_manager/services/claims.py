"""Who claimed which ``(name, version)`` this run, in memory that stays the same however large the run.

The first entry in path order to claim an identity holds it (see ``decisions``); an import
decides batch after batch, so a batch asks what earlier batches claimed. Those are saved
already, so only a filter of them is kept here, and the catalog answers a "maybe".
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable

from lora_manager.db import repository as repo


class ClaimFilter:
    """Which identities earlier batches may have claimed: a fixed-size bit filter (1 MiB).

    A "maybe" is checked against the catalog (see :class:`Claims`), so a false one costs a
    query and nothing else: with two bits an identity, 100,000 claims answer "maybe" for one
    identity in 2,000 that was never claimed. Memory stays the same however large the run.
    """

    BITS = 1 << 23

    def __init__(self) -> None:
        self.bits = bytearray(self.BITS // 8)

    @staticmethod
    def _positions(ident: repo.Identity) -> tuple[int, int]:
        h = hash(ident)
        return h & (ClaimFilter.BITS - 1), (h >> 32) & (ClaimFilter.BITS - 1)

    def update(self, idents: Iterable[repo.Identity]) -> None:
        bits = self.bits
        for ident in idents:
            for i in self._positions(ident):
                bits[i >> 3] |= 1 << (i & 7)

    def __contains__(self, ident: object) -> bool:
        if not isinstance(ident, tuple):
            return False
        bits = self.bits
        return all(bits[i >> 3] & (1 << (i & 7)) for i in self._positions(ident))


class Claims:
    """Who claimed an identity this run: the batch's claims in full, earlier batches' in a filter.

    Remembering every earlier claim in full (identity and entry key) cost ~330 bytes a model:
    a fifth of a 100,000-model cold import's memory. Earlier batches are saved, so a claim
    of theirs is in the catalog: the filter only says when to look. A "maybe" for an identity
    nobody claimed finds an owner that was not read this run, which counts as no claim.
    """

    __slots__ = ("batch", "earlier", "holder_of")

    def __init__(
        self,
        batch: dict[repo.Identity, str],
        earlier: Container[repo.Identity],
        holder_of: Callable[[repo.Identity], str | None],
    ) -> None:
        self.batch = batch
        self.earlier = earlier
        self.holder_of = holder_of

    def get(self, ident: repo.Identity) -> str | None:
        holder = self.batch.get(ident)
        if holder is None and ident in self.earlier:
            return self.holder_of(ident)
        return holder

    def __setitem__(self, ident: repo.Identity, key: str) -> None:
        self.batch[ident] = key
