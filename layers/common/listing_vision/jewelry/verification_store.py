"""Verification features of catalogue images, kept as a small object beside each image.

A duplicate check verifies up to SEARCH_TOP_K candidates; downloading each candidate's image from
S3 and finding its keypoints again would cost a full-size GET and ~10 ms of CPU per candidate. So
when an image is stored, its features (ORB keypoints and descriptors, a 64 px colour thumbnail;
about 30 KB) are written once, keyed by content like the image itself:
`verification/<sha256[:2]>/<sha256>.npz` in the image's bucket. The checker reads them in parallel.

Images indexed before this existed have no features object: the checker then reads the image
itself, finds its features and writes them, so the next check is cheap.
"""

from __future__ import annotations

from botocore.exceptions import ClientError
from PIL import Image

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.errors import VisionError
from listing_vision.imaging import verify
from listing_vision.imaging.decode import load_image
from listing_vision.jewelry import storage
from listing_vision.observability import logger, metrics

PREFIX = "verification/"
MISSING = ("404", "NoSuchKey", "NotFound")


def features_key(sha256: str) -> str:
    return f"{PREFIX}{sha256[:2]}/{sha256}.npz"


def is_features_key(key: str) -> bool:
    """Objects this module writes: the upload trigger must not index them as photos."""
    return key.startswith(PREFIX)


def put_features(bucket: str, sha256: str, features: verify.ImageFeatures) -> None:
    aws.client("s3").put_object(
        Bucket=bucket,
        Key=features_key(sha256),
        Body=features.to_bytes(),
        ContentType="application/octet-stream",
        Metadata={"sha256": sha256, "format": f"orb-v{verify.FORMAT_VERSION}"},
    )


def extract(image: Image.Image) -> verify.ImageFeatures:
    """A decoded upload's features, with the mirrored set a query needs."""
    return verify.extract(image, with_mirror=True)


def load_features(path: str, sha256: str) -> verify.ImageFeatures | None:
    """The features of a catalogue image: its features object, or else the image itself (features
    written back for next time). None when neither can be read (the image was deleted)."""
    image = storage.StoredImage.from_uri(path)
    s3 = aws.client("s3")
    if sha256:
        try:
            body = s3.get_object(Bucket=image.bucket, Key=features_key(sha256))["Body"].read()
            return verify.ImageFeatures.from_bytes(body)
        except ClientError as error:
            if error.response["Error"]["Code"] not in MISSING:
                raise
        except ValueError as error:  # an older or damaged record: rebuilt from the image below
            logger.warning("verification features unreadable", extra={"path": path, "error": str(error)})
    metrics.add_metric(name="VerificationFeaturesFromImage", unit="Count", value=1)
    settings = get_settings()
    try:
        head = s3.head_object(Bucket=image.bucket, Key=image.key)
        if head["ContentLength"] > settings.max_object_bytes:
            return None
        data = s3.get_object(Bucket=image.bucket, Key=image.key)["Body"].read()
        features = verify.extract(load_image(data, settings.max_image_pixels))
    except ClientError as error:
        if error.response["Error"]["Code"] not in MISSING:
            raise
        logger.warning("duplicate candidate's image is gone", extra={"path": path})
        return None
    except VisionError as error:
        logger.warning("duplicate candidate's image is unreadable", extra={"path": path, "code": error.code})
        return None
    put_features(image.bucket, sha256 or storage.sha256_hex(data), features)
    return features
