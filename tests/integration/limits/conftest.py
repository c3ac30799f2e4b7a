"""Shared by the limits tests: a request body with a known price."""

from __future__ import annotations

GPT = {"model": "gpt-image-1.5", "prompt": "a kite", "gptImageParams": {"quality": "low"}}
GPT_COST = 4
MIDJOURNEY = {"model": "midjourney", "prompt": "a castle"}
