"""digestbot: email digests and alerts for new research papers."""

__version__ = "0.2.0.dev0"
