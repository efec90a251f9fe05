"""The page around the data: self-contained, its data inert, its scripts pinned by hash."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from test_explorer_data import payload_of, synthetic_job

from backprop_lab.explorer.page import page_html, render_explorer, script_json, write_explorer

HOSTILE = '</script><img src=x onerror=alert(1)><script>alert(2)</script>&amp; "quoted"'


def test_json_in_a_script_element_cannot_close_it():
    payload = {"title": HOSTILE, "list": ["<!--", "-->", "<script", "&"]}
    text = script_json(payload)
    assert not set("<>&") & set(text)
    assert json.loads(text) == payload


def test_names_from_a_run_reach_the_page_only_as_escaped_json():
    job, _, _ = synthetic_job()
    job.name = job.label = HOSTILE
    page = render_explorer(HOSTILE, [job], subtitle=HOSTILE, notes=[HOSTILE])
    assert "<img" not in page and "alert(2)" not in page.split("<script>")[-1]
    # Two script elements: the inert data block and the page's own code.
    assert page.count("<script") == 2 and page.count("</script>") == 2
    payload = payload_of(page)
    assert payload["title"] == payload["subtitle"] == payload["jobs"][0]["name"] == HOSTILE
    assert "<title>&lt;/script&gt;&lt;img src=x" in page


def test_the_page_loads_nothing_and_runs_only_its_own_script():
    job, _, _ = synthetic_job()
    page = render_explorer("grid", [job])
    lowered = page.lower()
    for forbidden in ("http://", "https://", "src=", "href=", "<link", "@import", "url("):
        assert forbidden not in lowered, forbidden
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in policy
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    for code in (
        "eval(",
        "new Function",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
    ):
        assert code not in script, code


def test_the_same_jobs_give_the_same_bytes():
    job, _, _ = synthetic_job()
    assert render_explorer("grid", [job]) == render_explorer("grid", [job])


def test_writing_replaces_the_file_at_once(tmp_path):
    path = tmp_path / "explorer.html"
    path.write_text("the old page")
    size = write_explorer(path, page_html({"title": "t", "subtitle": "", "notes": [], "jobs": []}))
    assert path.stat().st_size == size and "the old page" not in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["explorer.html"]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(OSError):
        write_explorer(tmp_path / "missing" / "explorer.html", "page")
    assert list(tmp_path.iterdir()) == []
