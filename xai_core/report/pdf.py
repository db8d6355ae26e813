"""The report as PDF through WeasyPrint (HTML/CSS to PDF in Python, no browser): the HTML
report without its JavaScript charts, whose numbers are in its tables.

WeasyPrint draws text with Pango, a system library (Debian: ``libpango-1.0-0``, already there
wherever chromium is installed); without it, or without the package, this says so in one line.
"""

from __future__ import annotations

from ..errors import XaiError


class PdfUnavailable(XaiError):
    """WeasyPrint or the system libraries it needs are missing."""


def html_to_pdf(html: str) -> bytes:
    """PDF bytes of a self-contained HTML document (images as data: URIs; nothing is fetched)."""
    try:
        import weasyprint
    except (ImportError, OSError) as e:  # OSError: Pango / GObject not found
        raise PdfUnavailable(f"PDF reports need WeasyPrint and Pango ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else e}); install them with "
                             "`pip install weasyprint` and `apt-get install libpango-1.0-0`, or write HTML") from e

    # A self-contained report needs only data: URIs; nothing else may be fetched (no network, no files).
    fetcher = weasyprint.URLFetcher(allowed_protocols={"data"})
    return weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf()
