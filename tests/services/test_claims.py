"""What a run remembers of the identities earlier batches claimed."""

from __future__ import annotations

from lora_manager.services.claims import ClaimFilter


def test_claim_filter_holds_every_claim_and_rarely_answers_maybe_for_others() -> None:
    """Every added identity is in the filter; of 10,000 never added, almost none seem to be (fixed size)."""
    claims = ClaimFilter()
    added = [(f"LoRA {i}", f"v{i % 7}") for i in range(100_000)]
    claims.update(added)
    assert all(ident in claims for ident in added)
    false_maybes = sum((f"Other {i}", "v1") in claims for i in range(10_000))
    assert false_maybes < 100  # expected about 5
    assert len(claims.bits) == ClaimFilter.BITS // 8
