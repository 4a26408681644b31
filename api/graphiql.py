"""GraphiQL served offline: strawberry's page, its scripts and styles served by the API itself.

Strawberry's page loads pinned versions of its assets from a CDN. The same versions are
installed from the npm registry at install time (`python -m api.graphiql` names them for
the Makefile), and the page is rewritten to load them from ASSETS_PATH.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from strawberry.http.ides import get_graphql_ide_html

ASSETS_PATH = "/graphiql"
DEFAULT_ASSETS_DIR = Path(__file__).resolve().parents[1] / "build" / "graphiql"
# https://<cdn>/<package>@<version>/<file>, a package name possibly scoped (@scope/name).
CDN_ASSET = re.compile(r"https://[a-z0-9.-]+/((?:@[\w.-]+/)?[\w.-]+)@([\w.-]+)/([\w./-]+)")


@dataclass(frozen=True)
class Asset:
    """One file of an npm package that the page loads."""

    package: str
    version: str
    file: str

    @property
    def path(self) -> str:
        """Where the API serves it, below ASSETS_PATH."""
        return f"{self.package}/{self.file}"


def page_assets(template: str) -> list[Asset]:
    """The assets a GraphiQL page template loads from a CDN."""
    found = [Asset(*match.groups()) for match in CDN_ASSET.finditer(template)]
    return list(dict.fromkeys(found))


def npm_specs(assets: list[Asset]) -> list[str]:
    """`package@version` for each package the assets come from, for `npm install`."""
    return list(dict.fromkeys(f"{asset.package}@{asset.version}" for asset in assets))


class GraphiQLPage:
    """The page and its assets, read from `assets_dir` where npm installed them."""

    def __init__(self, assets_dir: Path) -> None:
        template = get_graphql_ide_html("graphiql")
        self._assets = {asset.path: asset for asset in page_assets(template)}
        self._modules = assets_dir / "node_modules"
        self.html = CDN_ASSET.sub(
            lambda match: f"{ASSETS_PATH}/{match.group(1)}/{match.group(3)}", template
        )

    def missing(self) -> list[str]:
        """The packages not installed in the page's versions (none once the install ran)."""
        return [
            f"{asset.package}@{asset.version}"
            for asset in {asset.package: asset for asset in self._assets.values()}.values()
            if self._installed_version(asset.package) != asset.version
        ]

    def _installed_version(self, package: str) -> str | None:
        try:
            manifest = json.loads((self._modules / package / "package.json").read_text())
        except (OSError, ValueError):
            return None
        version = manifest.get("version") if isinstance(manifest, dict) else None
        return version if isinstance(version, str) else None

    def render(self) -> Response:
        """The page, or a plain explanation where the assets were not installed."""
        missing = self.missing()
        if missing:
            return PlainTextResponse(
                "GraphiQL's assets are not installed (" + ", ".join(missing) + "): run "
                "`make install`, or point SAGALINE_GRAPHIQL_ASSETS_DIR at them.",
                status_code=503,
            )
        return HTMLResponse(self.html)

    async def serve_asset(self, request: Request) -> Response:
        """One asset the page loads; nothing else under node_modules is served."""
        asset = self._assets.get(request.path_params["path"])
        target = self._modules / asset.package / asset.file if asset else None
        if target is None or not target.is_file():
            return PlainTextResponse("Not Found", status_code=404)
        return FileResponse(target, headers={"Cache-Control": "public, max-age=86400"})


if __name__ == "__main__":
    sys.stdout.write(" ".join(npm_specs(page_assets(get_graphql_ide_html("graphiql")))) + "\n")
