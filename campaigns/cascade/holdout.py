"""Stable holdout assignment: the same person and campaign always land on the same side."""

from __future__ import annotations

import hashlib


def holdout_draw(campaign_id: str, ben_nir_psa: str, ben_rng_gem: int) -> float:
    """A uniform number in [0, 1) fixed by campaign and person."""
    digest = hashlib.sha256(f"{campaign_id}|{ben_nir_psa}|{ben_rng_gem}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(campaign_id: str, ben_nir_psa: str, ben_rng_gem: int, share: float) -> bool:
    """Whether the person is kept out of every contact for this campaign."""
    return holdout_draw(campaign_id, ben_nir_psa, ben_rng_gem) < share
