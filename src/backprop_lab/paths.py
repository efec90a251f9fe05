"""Where things live: the project root, the config folder, and names made safe for folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

from backprop_lab.errors import BackpropLabError

# Longest folder name made from a user's name (file systems allow 255 bytes).
_MAX_FOLDER_NAME = 100


def conf_dir() -> Path:
    """``conf/``: the source checkout's when there is one, else the copy inside the wheel."""
    checkout = Path(__file__).resolve().parents[2] / "conf"
    if (checkout / "train.yaml").is_file():
        return checkout
    packaged = Path(__file__).resolve().parent / "conf"
    if (packaged / "train.yaml").is_file():
        return packaged
    raise BackpropLabError("cannot find the config folder conf/; reinstall backprop-lab")


def project_root() -> Path:
    """The source checkout's root (where ``mlflow.db`` lives); the working directory otherwise."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "conf").is_dir():
        return checkout
    return Path.cwd()


def safe_name(name: str) -> str:
    """A folder name for ``name`` that stays inside its parent on every file system.

    Letters, digits, ``-``, ``_`` and ``.`` are kept and anything else becomes ``_``; a name
    that would be hidden or special (``.``, ``..``) gets a leading ``_``; a long name is cut
    and ends with a short hash of the whole, so different long names stay different.
    """
    slug = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name)
    if not slug or slug.startswith("."):
        slug = "_" + slug
    if len(slug) > _MAX_FOLDER_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        slug = f"{slug[: _MAX_FOLDER_NAME - 11]}-{digest}"
    return slug
