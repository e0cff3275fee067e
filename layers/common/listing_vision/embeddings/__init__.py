"""Image embeddings: the Embedder protocol and its SageMaker and in-process ONNX implementations."""
