"""The model catalog: one module per model family under ``families/``, gathered by ``registry``."""

from imagegate.catalog.registry import Catalog, build_catalog
from imagegate.catalog.spec import Capabilities, ModelSpec, Pricing

__all__ = ["Capabilities", "Catalog", "ModelSpec", "Pricing", "build_catalog"]
