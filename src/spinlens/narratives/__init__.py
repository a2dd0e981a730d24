"""Documented disinformation narratives: the catalogue of claims and the matcher."""

from spinlens.narratives.catalogue import CatalogueStore, Claim, Family, starter_families
from spinlens.narratives.matcher import EmbeddingMatcher

__all__ = ["CatalogueStore", "Claim", "EmbeddingMatcher", "Family", "starter_families"]
