"""The browser display as a static bundle whose code is pinned by its loader page.

A display must not run code the cloud it defends against delivers (docs/THREAT_MODEL.md, "Who
delivers a display's code"). The bundle is what a display installs from the project's release,
or loads from an origin the cloud does not control: the page's modules, its stylesheet and hls.js,
and a loader page, ``index.html`` (made from ``display.html``), which

- names every file with its Subresource Integrity hash (``integrity=`` on the stylesheet and
  the scripts; the modules the display imports in the import map's ``integrity`` section, so a
  static ``import`` is checked as the entry point is);
- carries a Content Security Policy that runs scripts from its own origin only (and its import
  map, by its hash), connects anywhere for data, and plays media from ``blob:`` (Media Source
  Extensions): a cloud can answer with data, never with code the page runs.

``manifest.json`` lists every file's hash and the loader page's: what a release publishes and an
installer checks (``tools/display_bundle.py --check``). Changing one byte of any file changes its
hash, so the loader refuses it, and changes the loader's own hash, so the installer refuses that.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Dict, Mapping, Optional

from . import ASSETS, hlsjs_path

MODULES = ("display.js", "segbind-verify.js", "segbind-mp4.js", "segbind-syntax.js", "segbind-grants.js")
STYLES = ("display.css",)
HLSJS = "hls.min.js"
LOADER = "index.html"
MANIFEST = "manifest.json"
MARK = "<!-- segbind: code -->"


class BundleError(RuntimeError):
    """A bundle that cannot be made (hls.js not installed) or that differs from its manifest."""


def sri(data: bytes) -> str:
    """A Subresource Integrity value: sha384, base64."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def csp_hash(text: str) -> str:
    """A Content Security Policy hash-source for an inline script's text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def files(overrides: Optional[Mapping[str, bytes]] = None) -> Dict[str, bytes]:
    """Every file of the bundle but its loader page, from the package (and hls.js from npm)."""
    out = {name: (ASSETS / name).read_bytes() for name in MODULES + STYLES}
    hlsjs = hlsjs_path()
    if hlsjs is None:
        raise BundleError("hls.js is not installed: run `npm ci` in %s" % ASSETS)
    out[HLSJS] = hlsjs.read_bytes()
    out.update(overrides or {})
    return out


def loader_page(hashes: Mapping[str, str]) -> str:
    """index.html: display.html with its code named by hash, and a policy that runs nothing else."""
    importmap = json.dumps({"imports": {}, "integrity": {"./" + name: hashes[name] for name in MODULES}},
                           indent=1, sort_keys=True)
    policy = "; ".join([
        "default-src 'none'",
        "script-src 'self' %s" % csp_hash(importmap),  # this origin's files, and the import map
        "style-src 'self'",
        "connect-src *",          # data: the cloud's routing, playlists, fragments, sealed grants
        "media-src blob:",        # Media Source Extensions
        "worker-src blob:",       # hls.js's worker
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
    ])
    code = "\n  ".join([
        '<meta http-equiv="Content-Security-Policy" content="%s">' % policy,
        '<link rel="stylesheet" href="display.css" integrity="%s">' % hashes["display.css"],
        '<script type="importmap">%s</script>' % importmap,
        '<script src="%s" integrity="%s"></script>' % (HLSJS, hashes[HLSJS]),
        '<script type="module" src="display.js" integrity="%s"></script>' % hashes["display.js"],
    ])
    template = (ASSETS / "display.html").read_text(encoding="utf-8")
    if template.count(MARK) != 1:
        raise BundleError("display.html has no single %s" % MARK)
    return template.replace(MARK, code)


def build(out: Path, overrides: Optional[Mapping[str, bytes]] = None) -> Dict[str, object]:
    """Write the bundle into ``out`` (created); its manifest. ``overrides`` replace files after
    their hashes were taken: how the tests make a tampered copy of a pinned bundle."""
    out.mkdir(parents=True, exist_ok=True)
    original = files()
    hashes = {name: sri(data) for name, data in original.items()}
    page = loader_page(hashes).encode("utf-8")
    for name, data in {**original, **(overrides or {}), LOADER: page}.items():
        (out / name).write_bytes(data)
    manifest: Dict[str, object] = {"segbind": "display-bundle", "loader": LOADER,
                                   "files": {**hashes, LOADER: sri(page)}, "digest": hashlib.sha256(page).hexdigest()}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def check(directory: Path, manifest: Mapping[str, object]) -> None:
    """BundleError unless every file of ``manifest`` is in ``directory`` with its hash (an
    installed bundle against the release's manifest)."""
    listed = manifest.get("files")
    if not isinstance(listed, dict) or LOADER not in listed:
        raise BundleError("not a display bundle manifest")
    for name, value in sorted(listed.items()):
        path = directory / name
        if not path.is_file():
            raise BundleError("%s: missing" % name)
        if sri(path.read_bytes()) != value:
            raise BundleError("%s: not the release's (its hash differs)" % name)


__all__ = ["BundleError", "HLSJS", "LOADER", "MANIFEST", "MODULES", "build", "check", "files", "loader_page", "sri"]
