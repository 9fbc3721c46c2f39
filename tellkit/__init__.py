"""tellkit: Token-Efficient Leverage Learning (arXiv 2404.00914).

Pipeline: data -> anchor -> mix -> train -> evaluate -> analyse -> report.
"""

__version__ = "0.1.0"
