"""Image build step: refuse a base image whose Python lacks the tarfile filter fixes of
CVE-2025-4517 (and its siblings), fixed in 3.9.23, 3.10.18, 3.11.13, 3.12.11 and 3.13.4.

Our archive checks (tasks/artifact.py) hold on any version; this floor keeps the images off the
versions where the standard library's own `filter="data"` can be bypassed."""

from __future__ import annotations

import sys

FIXED = {(3, 9): 23, (3, 10): 18, (3, 11): 13, (3, 12): 11, (3, 13): 4}


def problem(version: tuple[int, int, int]) -> str | None:
    """Why `version` is refused, or None."""
    if version[:2] > (3, 13):
        return None
    fixed = FIXED.get(version[:2])
    if fixed is not None and version[2] >= fixed:
        return None
    floor = f"{version[0]}.{version[1]}.{fixed}" if fixed else "3.11.13"
    return (
        f"Python {'.'.join(map(str, version))} lacks the tarfile fixes of CVE-2025-4517; "
        f"use a base image with Python {floor} or newer"
    )


if __name__ == "__main__":
    reason = problem(tuple(sys.version_info[:3]))
    sys.exit(reason)
