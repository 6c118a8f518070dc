"""The dashboard: a static page at ``/ui`` (``/`` redirects there) built from the public API only.

``fedchain/api/static/`` holds the page, its script and its style sheet: no framework, no chart
library, no CDN (the plots are inline SVG drawn by the script). The script reads ``/health``,
``/deployment``, ``/rounds``, ``/rounds/{id}``, ``/nodes`` and the round config blob, every few
seconds, as any client could; these routes serve files only and are not in the OpenAPI document.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from fedchain.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*\.(html|js|css|svg|txt)$")
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
@router.get("/ui/")
def dashboard() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_NO_CACHE)


@router.get("/ui/{name}")
def asset(name: str) -> FileResponse:
    path = STATIC_DIR / name
    if not _NAME.match(name) or not path.is_file():
        raise NotFound(f"no dashboard file {name!r}", hint="the dashboard is at /ui/")
    return FileResponse(path, headers=_NO_CACHE)
