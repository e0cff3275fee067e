"""CLIP image-embedding endpoint: SageMaker handler, ONNX export, the local descriptor, packaging."""
