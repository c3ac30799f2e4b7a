"""imagegate: a self-hosted image generation gateway speaking the Apiframe v2 image API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
