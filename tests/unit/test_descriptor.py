"""The weight-free local model keeps the duplicate threshold meaningful on real photos."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL, OnnxEmbedder

DUPLICATE_SIMILARITY = 0.95  # distance 0.05, the default DUPLICATE_THRESHOLD


def recompressed_half_size(photo: Path) -> bytes:
    image = Image.open(photo).convert("RGB")
    half = image.resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    half.save(buffer, "JPEG", quality=30)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder(DESCRIPTOR_MODEL)


def test_copies_score_as_duplicates_and_unrelated_photos_do_not(embedder: OnnxEmbedder, photos: list[Path]) -> None:
    # Given ten real photographs and a copy of each resized to 50 % and re-encoded at JPEG quality 30
    originals = embedder.embed([p.read_bytes() for p in photos])
    copies = embedder.embed([recompressed_half_size(p) for p in photos])
    # Then every copy scores ≥ 0.95 against its original
    same = (originals * copies).sum(axis=1)
    assert same.min() >= DUPLICATE_SIMILARITY, same
    # And every pair of different photos (originals and copies alike) scores < 0.90
    unrelated = [float(originals[i] @ originals[j]) for i, j in itertools.combinations(range(len(photos)), 2)]
    unrelated += [float(originals[i] @ copies[j]) for i in range(len(photos)) for j in range(len(photos)) if i != j]
    assert max(unrelated) < 0.90, max(unrelated)


def test_vectors_are_unit_length_512_d(embedder: OnnxEmbedder, photos: list[Path]) -> None:
    vectors = embedder.embed([p.read_bytes() for p in photos[:3]])
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_shipped_model_is_what_the_builder_builds(tmp_path: Path, photos: list[Path]) -> None:
    from serving.clip.descriptor import main as build_descriptor

    build_descriptor([str(tmp_path / "rebuilt.onnx")])
    images = [p.read_bytes() for p in photos[:4]]
    rebuilt = OnnxEmbedder(tmp_path / "rebuilt.onnx").embed(images)
    assert np.array_equal(rebuilt, OnnxEmbedder(DESCRIPTOR_MODEL).embed(images))


def test_mirror_images_embed_exactly_as_their_originals(embedder: OnnxEmbedder, photos: list[Path]) -> None:
    # Given real photos and their mirror images (earrings come in pairs)
    mirrored = []
    for photo in photos:
        buffer = io.BytesIO()
        Image.open(photo).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(buffer, "PNG")
        mirrored.append(buffer.getvalue())
    # Then each scores as its original (the layout block takes |coefficient| where a mirror flips its sign)
    originals = embedder.embed([p.read_bytes() for p in photos])
    assert ((originals * embedder.embed(mirrored)).sum(axis=1) > 0.999).all()


def test_what_it_sees_and_does_not_stays_documented(embedder: OnnxEmbedder, photos: list[Path]) -> None:
    # docs/embeddings.md says: the colour block keeps a hue-turned colour variant from scoring as a
    # copy; a grayscale copy loses that block and scores about 0.88; the layout's Fourier magnitudes,
    # the tones and the hues do not see a half turn, so a photo upside down embeds as its original
    # (verification decides), while one turned by 90° does not.
    from evaluation.variants import encode, rotate_hue

    # Given a real colour photo and its hue-turned, grayscale, upside-down and 90°-turned versions
    image = Image.open(photos[0]).convert("RGB")
    original = embedder.embed([photos[0].read_bytes()])[0]
    hue, grayscale, upside_down, turned = embedder.embed(
        [
            encode(rotate_hue(image, 120)),
            encode(image.convert("L"), quality=90),
            encode(image.transpose(Image.Transpose.FLIP_TOP_BOTTOM), "PNG"),
            encode(image.rotate(90, expand=True), "PNG"),
        ]
    )
    # Then each scores as documented
    assert float(original @ hue) < DUPLICATE_SIMILARITY
    assert 0.85 < float(original @ grayscale) < DUPLICATE_SIMILARITY
    assert float(original @ upside_down) > 0.999
    assert float(original @ turned) < 0.99
