"""Text: the V4 tokenizer (checked special ids) and the V4 chat encoding. Pure Python, no torch."""
