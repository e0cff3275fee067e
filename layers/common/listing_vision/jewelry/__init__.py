"""Jewelry storefronts: duplicate detection, captions, catalogue-image generation, storage."""
