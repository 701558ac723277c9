"""Celery workers that run simplification jobs on a local LLM at an adaptive precision."""
