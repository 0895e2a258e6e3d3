"""Reports: a study folder read back (findings), its sections as HTML and Markdown (sections,
render), and results tables of any runs (tables)."""
from .sections import write_report

__all__ = ["write_report"]
