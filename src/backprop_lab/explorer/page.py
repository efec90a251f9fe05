"""The explorer's HTML: ``explorer.js`` and ``explorer.css`` inline, the data as inert JSON.

The page is self-contained: it opens from ``file://`` with no network, and its Content
Security Policy forbids every request (``default-src 'none'``) and every script but its own
(by hash), so even an inline event handler that slipped into the page would not run. Values
that come from a run (its name, labels, notes) reach the page only inside the JSON block,
with ``<``, ``>`` and ``&`` escaped so it cannot end its ``<script>`` element; the page's
script sets them as text, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from backprop_lab.explorer.data import (
    DEFAULT_MAX_BYTES,
    ExplorerJob,
    job_payload,
    thinning_levels,
)

EXPLORER_ARTIFACT = "explorer.html"
FORMAT_VERSION = 1
# Base64 characters per byte of parameters, compressed, for a trained network (measured about
# 0.7; random numbers, which do not compress, take 1.34).
ENCODED_PER_RAW_BYTE = 0.75


def _asset(name: str) -> str:
    return resources.files("backprop_lab.explorer").joinpath(name).read_text(encoding="utf-8")


def script_json(payload: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or
    ``&`` (they become ``\\u003c`` and so on, which ``JSON.parse`` reads back)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def page_html(payload: dict[str, Any]) -> str:
    """The whole page around ``payload`` (see :func:`render_explorer`)."""
    script, style = _asset("explorer.js"), _asset("explorer.css")
    policy = (
        f"default-src 'none'; script-src '{_hash(script)}'; style-src '{_hash(style)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(payload['title'])} — backprop-lab explorer</title>\n"
        f"<style>{style}</style>\n</head>\n<body>\n"
        "<noscript><p>The explorer draws with JavaScript; it needs a browser with scripts on.</p></noscript>\n"
        f'<script type="application/json" id="bplab-data">{script_json(payload)}</script>\n'
        f"<script>{script}</script>\n</body>\n</html>\n"
    )


def _payload(title: str, subtitle: str, notes, jobs_payload: list[dict]) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "title": title,
        "subtitle": subtitle,
        "notes": list(notes),
        "jobs": jobs_payload,
    }


def render_explorer(
    title: str,
    jobs: list[ExplorerJob],
    *,
    subtitle: str = "",
    notes=(),
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> str:
    """The explorer page of ``jobs``, at most ``max_bytes`` when it can be: fewer snapshots,
    then fewer cells' parameters, then none are kept when everything would not fit (the
    page's notes say so)."""

    def render(level) -> str:
        return page_html(_payload(title, subtitle, notes, [job_payload(j, level) for j in jobs]))

    levels = list(thinning_levels(jobs))
    curves_only = render(levels[-1])
    base = len(curves_only.encode("utf-8"))
    for level in levels[:-1]:
        # Skip levels that cannot fit without compressing megabytes to find out.
        kept = sum(job.param_matrix_bytes * level.kept_fraction(job) for job in jobs)
        if base + kept * ENCODED_PER_RAW_BYTE > max_bytes:
            continue
        page = render(level)
        if len(page.encode("utf-8")) <= max_bytes:
            return page
    return curves_only


def write_explorer(path: str | Path, page: str) -> int:
    """Write the page atomically (a reader never sees half a file); return its size."""
    path = Path(path)
    data = page.encode("utf-8")
    handle, temporary = tempfile.mkstemp(prefix=".explorer-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as output:
            output.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(data)
