"""tellkit: Token-Efficient Leverage Learning (arXiv 2404.00914).

Pipeline: config -> data + anchor -> mix -> train -> evaluate -> report, and studies (compare, sweep) over
many runs; README.md, "The pipeline", maps it onto the package.
"""

__version__ = "0.1.0"
