"""Whole-document prompts `[system][document][task]`, summary styles, and the window policy."""

from pipeline.prompts.budget import Budget, Part, Plan, check_fits, fit, part_document, prompt_tokens, span_of
from pipeline.prompts.builders import (
    Prompt,
    combine_prompt,
    digest_prompt,
    part_prompt,
    question_prompt,
    summary_prompt,
    warmup_prompt,
)
from pipeline.prompts.sanitize import sanitize, strip_invisible
from pipeline.prompts.styles import STYLES, SummaryStyle, get_style

__all__ = [
    "Budget", "Part", "Plan", "Prompt", "STYLES", "SummaryStyle", "check_fits", "combine_prompt", "digest_prompt",
    "fit", "get_style", "part_document", "part_prompt", "prompt_tokens", "question_prompt", "sanitize", "span_of",
    "strip_invisible", "summary_prompt", "warmup_prompt",
]
