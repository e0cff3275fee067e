"""Lambda functions: thin handlers over the shared library (layers/common/listing_vision)."""
