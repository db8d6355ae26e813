"""xaiboard dashboard: ``streamlit run app.py -- --logdir summaries`` (or set XAI_LOGDIR).

This file is only the frame around the pages in ``pages/`` (listed in ``pages/_frame.py``);
the active run travels in the URL as ``?run=<name>``.
"""

import streamlit as st

from pages._frame import FRAME, frame_extras, nav_pages
from xai_core.dashboard import preload

st.set_page_config(page_title="xaiboard", page_icon="🔍", layout="wide")

FRAME.active = True
frame_extras()
try:
    st.navigation(nav_pages()).run()
finally:
    FRAME.active = False
    # Heavy imports off the path of a later click (once per server process), started after
    # the first page is drawn so that they do not slow it down.
    preload()
