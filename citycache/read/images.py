"""The image-name rule: which object names the API serves and the CLI uploads."""
from __future__ import annotations

import re

# A flat object name: no slashes (so no path tricks), no control characters, no leading dot.
IMAGE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
IMAGE_NAME_RULE = "image name must be 1-128 letters, digits, '.', '_' or '-', without '..'"


def valid_image_name(name: str) -> bool:
    return IMAGE_NAME_RE.fullmatch(name) is not None and ".." not in name
