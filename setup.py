"""Build hook only (the metadata is in pyproject.toml): a wheel carries the dashboard app.

``app.py`` and ``pages/`` live at the repository root (``streamlit run app.py`` works in a
checkout); a built wheel gets a copy in ``xai_core/_app/`` so that an installed ``xai-core serve``
finds the app without the repository (:func:`xai_core.dashboard_server.app_script`). Editable
installs use the repository's files directly.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithDashboard(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest = Path(self.build_lib) / "xai_core" / "_app"
        (dest / "pages").mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "app.py", dest / "app.py")
        for page in sorted((ROOT / "pages").glob("*.py")):
            shutil.copy2(page, dest / "pages" / page.name)


setup(cmdclass={"build_py": BuildWithDashboard})
