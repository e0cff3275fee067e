"""Model providers (OpenAI, Anthropic) and the offline providers for keyless local use."""
