#!/usr/bin/env python3
"""Vendor the MCP Apps app bridge (`@modelcontextprotocol/ext-apps`, its self-contained `app-with-deps` build) into
src/pixelmcp/server/ui, so the app's HTML carries it inline: hosts sandbox apps without network access.

    npm pack @modelcontextprotocol/ext-apps@VERSION && python scripts/vendor_ext_apps.py modelcontextprotocol-ext-apps-VERSION.tgz

The bundle is an ES module ending in one `export{local as name, ...}`; that statement becomes an assignment to
`globalThis.McpExtApps`, so the bundle runs as a classic inline script before the app's own code.
"""

from __future__ import annotations

import json
import re
import sys
import tarfile
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "src" / "pixelmcp" / "server" / "ui"


def main(tarball: str) -> None:
    with tarfile.open(tarball) as archive:
        version = json.load(archive.extractfile("package/package.json"))["version"]
        bundle = archive.extractfile("package/dist/src/app-with-deps.js").read().decode()
        licence = archive.extractfile("package/LICENSE").read().decode()
    exports = re.search(r"export\{([^}]*)\};?\s*$", bundle)
    if exports is None:
        sys.exit("the bundle does not end in one export statement: check the package layout")
    names = [item.strip().split(" as ") for item in exports.group(1).split(",")]
    table = ",".join(f"{pair[-1]}:{pair[0]}" for pair in names)
    script = bundle[: exports.start()] + f"globalThis.McpExtApps={{{table}}};\n"
    if "import.meta" in script or re.search(r"^\s*import[\s{]", script, re.MULTILINE):
        sys.exit("the bundle imports other modules or reads import.meta: it cannot run as a classic script")
    (TARGET / "ext-apps.js").write_text(f"/* @modelcontextprotocol/ext-apps {version} (app-with-deps), MIT licence: "
                                        "see LICENSE-ext-apps */\n" + script)
    (TARGET / "LICENSE-ext-apps").write_text(licence)
    print(f"vendored @modelcontextprotocol/ext-apps {version}: {len(script):,} characters")


if __name__ == "__main__":
    main(sys.argv[1])
