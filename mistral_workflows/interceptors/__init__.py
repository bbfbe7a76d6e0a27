"""Temporal interceptors: workflow context into activities, a publishing scope per attempt."""

from mistral_workflows.interceptors._context import HEADER, StreamingInterceptor

__all__ = ["HEADER", "StreamingInterceptor"]
