"""Model serving: the SageMaker CLIP endpoint's code and tools."""
