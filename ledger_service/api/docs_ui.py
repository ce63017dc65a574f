"""The interactive docs at /docs, served offline (issue 14): Swagger UI's files come from the
`swagger-ui-bundle-v2` wheel (Swagger UI 5, which renders OpenAPI 3.1; Apache-2.0), served under
/docs/assets/, instead of APIFlask's default CDN. A browser with no internet still shows every
operation. The assets route is hidden from the OpenAPI document and needs no key, like /docs.
"""

from __future__ import annotations

from pathlib import Path

from apiflask import APIFlask
from flask import send_from_directory

ASSETS = "/docs/assets"
FILES = {"SWAGGER_UI_CSS": "swagger-ui.css", "SWAGGER_UI_BUNDLE_JS": "swagger-ui-bundle.js",
         "SWAGGER_UI_STANDALONE_PRESET_JS": "swagger-ui-standalone-preset.js", "DOCS_FAVICON": "favicon-32x32.png"}


def assets_folder() -> Path:
    """Swagger UI's files as the wheel installs them."""
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    return Path(str(swagger_ui_path))


def serve_docs_offline(app: APIFlask) -> None:
    """Point APIFlask's Swagger UI page at the packaged files and serve them."""
    folder = assets_folder()
    for setting, name in FILES.items():
        app.config[setting] = f"{ASSETS}/{name}"

    @app.get(f"{ASSETS}/<path:filename>")
    @app.doc(hide=True)
    def docs_asset(filename: str):
        return send_from_directory(folder, filename, max_age=86400)
