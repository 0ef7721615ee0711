#!/usr/bin/env python3
"""Build the browser display's static bundle, or check an installed one against its manifest.

    python3 tools/display_bundle.py out/display            # build: index.html, the modules, hls.js, manifest.json
    python3 tools/display_bundle.py --check out/display --manifest RELEASE/manifest.json

The loader page (index.html) names every script and the stylesheet by its Subresource Integrity
hash, the modules it imports in its import map's integrity section, and carries a Content
Security Policy that runs this origin's files only: install the bundle from the project's
release, or serve it from an origin the cloud does not control (docs/DISPLAYS.md, "Where the
display's code comes from"). The build prints the loader page's SHA-256 (the bundle's digest,
the one hash that pins everything); --check exits 1 when a file is missing or not the release's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: "list[str] | None" = None) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "firmware"))
    from segbind.web import bundle

    parser = argparse.ArgumentParser(description="Build or check the browser display's static bundle")
    parser.add_argument("out", type=Path, help="the bundle's directory")
    parser.add_argument("--check", action="store_true",
                        help="check the directory against --manifest instead of building")
    parser.add_argument("--manifest", type=Path, help="the release's manifest.json (with --check)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            manifest = json.loads((args.manifest or args.out / bundle.MANIFEST).read_text(encoding="utf-8"))
            bundle.check(args.out, manifest)
            print("%s: the bundle of digest %s, every file as released" % (args.out, manifest["digest"]))
            return 0
        manifest = bundle.build(args.out)
    except (bundle.BundleError, OSError, ValueError) as exc:
        print("display_bundle: %s" % exc, file=sys.stderr)
        return 1
    print("%s: display bundle, loader %s, digest %s" % (args.out, bundle.LOADER, manifest["digest"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
