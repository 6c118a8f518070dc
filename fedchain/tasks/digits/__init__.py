"""The built-in ``digits`` task: handwritten-digit classification, split non-IID by label."""

from fedchain.tasks.digits.task import DigitsTask

__all__ = ["DigitsTask"]
