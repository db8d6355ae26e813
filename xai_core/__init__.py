"""xaiboard core: runs explainers and evaluation metrics over an image classifier
and writes a summary directory that the dashboard reads.

This package never imports Streamlit; the pages import only this package.
"""

__version__ = "0.1.0"
