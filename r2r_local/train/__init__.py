"""Training code (torch, transformers, tokenizers): imported only by scripts, never by the runtime."""
