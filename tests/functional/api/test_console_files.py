"""The console's files (``functions/console``): served without a key, each with its media type and the
strict Content-Security-Policy; only the files of its folder, the page only at /console."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neruba.api.console import security_headers
from tests.support.api import api_event, call

STATIC = Path(__file__).resolve().parents[3] / "functions" / "console" / "static"


def _get(path: str) -> tuple[int, object, dict[str, str]]:
    from functions.console.app import lambda_handler

    return call(lambda_handler, api_event("GET", path, scopes=None), check_contract=False)


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/api.js", "text/javascript"),
        ("/console/ui.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ],
)
def test_each_file_is_served_without_a_key_under_the_policy(path: str, media: str) -> None:
    status, body, headers = _get(path)
    assert status == 200
    assert headers["Content-Type"].startswith(media)
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe" not in policy and "frame-ancestors 'none'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert isinstance(body, str) and body


@pytest.mark.parametrize("name", ["nope.js", "index.html", "..%2Fapp.py", "app.py"])
def test_anything_else_is_a_404_in_the_error_shape(name: str) -> None:
    status, body, _ = _get(f"/console/{name}")
    assert status == 404
    assert isinstance(body, dict) and body["error"]["code"] == "not_found"


def test_the_page_loads_only_its_own_scripts_and_styles() -> None:
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script"
    assert " style=" not in html and "on" + "click=" not in html
    sources = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert all(s.startswith("console/") or s.startswith("data:") for s in sources), sources
    for script in STATIC.glob("*.js"):
        text = script.read_text()
        assert "innerHTML" not in text and "eval(" not in text and "new Function" not in text, script.name
        assert "localStorage" not in text, script.name


def test_the_first_load_is_small_and_docs_state_its_size() -> None:
    page = (STATIC / "index.html").read_text()
    loaded = ["index.html", *re.findall(r'(?:src|href)="console/([^"]+)"', page)]
    scripts = [(STATIC / "app.js").read_text()]
    while scripts:  # the modules app.js imports, and theirs
        for name in re.findall(r'from "\./([^"]+)"', scripts.pop()):
            if name not in loaded:
                loaded.append(name)
                scripts.append((STATIC / name).read_text())
    assert sorted(loaded) == sorted(p.name for p in STATIC.iterdir())  # every file is loaded at once
    size = sum((STATIC / name).stat().st_size for name in loaded)
    assert size < 64 * 1024
    stated = re.search(
        r"\*\*First load: ([\d,]+) bytes\*\*", (STATIC.parents[2] / "docs" / "console.md").read_text()
    )
    assert stated and int(stated.group(1).replace(",", "")) == size, f"docs/console.md: say {size:,} bytes"


def _send(method: str, path: str) -> tuple[int, object, dict[str, str]]:
    from functions.console.app import lambda_handler

    return call(lambda_handler, api_event(method, path, scopes=None), check_contract=False)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/console/nope.js", 404),  # no such file
        ("GET", "/console/a/b", 404),  # no such route
        ("POST", "/console", 405),
        ("DELETE", "/console/app.js", 405),
        ("PUT", "/console/nope.js", 405),
    ],
)
def test_every_answer_carries_the_policy_errors_too(method: str, path: str, status: int) -> None:
    # GIVEN a request the console does not serve WHEN it answers THEN the answer is an error in the one
    # shape, under the same policy and headers as the page (an error page is a page of this origin too)
    got, body, headers = _send(method, path)
    assert got == status
    assert isinstance(body, dict) and body["error"]["request_id"]
    for name, value in security_headers().items():
        assert headers.get(name) == value, name
    if status == 405:
        assert headers["Allow"] == "GET"


def test_a_long_or_strange_name_is_not_echoed_back() -> None:
    # a 404 names what was asked for, but never more than a short prefix of it
    name = "a" * 5000 + ".js"
    status, body, _ = _get(f"/console/{name}")
    assert status == 404 and isinstance(body, dict)
    assert len(body["error"]["message"]) < 200, body["error"]["message"]
