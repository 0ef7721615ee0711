"""What a web display needs from the package: its page and scripts, and CMAF packaging.

- ``segbind-verify.js``: the verifier in JavaScript (FORMAT.md), an ES module for
  browsers and Node; ``segbind-grants.js``: a display's sealed grants (GRANTS.md).
- ``display.html``, ``display.js``, ``display.css``: the browser display (hls.js with a
  fragment loader that verifies every fragment before Media Source Extensions).
- ``fmp4``: a tagged segment as one CMAF fragment, keyless (what the cloud serves).

hls.js is pinned in ``package.json`` here; ``npm ci`` in this directory puts it in
``node_modules``, from where the reference cloud serves it (``hlsjs_path``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

ASSETS = Path(__file__).resolve().parent
HLSJS = ("node_modules", "hls.js", "dist", "hls.min.js")


def hlsjs_path() -> Optional[Path]:
    """hls.js as installed by ``npm ci`` in this package's directory, or None when it is not."""
    path = ASSETS.joinpath(*HLSJS)
    return path if path.is_file() else None
