"""Photos taken on patrols and of hazards: checked by content, stored by content hash.

A phone uploads each photo once and puts the returned ``ref`` in the patrol record's or the
hazard's ``photos`` list. Only JPEG, PNG and WebP images are kept, proved by decoding them
(:func:`app.limits.check_photo`); the name and Content-Type the client sends are ignored. The
file is named by the SHA-256 of its bytes, so a retried upload stores nothing new and
answers the same ``ref``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from app.api.access import ReadAccess, ReportAccess
from app.limits import PHOTO_TYPES, check_photo, current

router = APIRouter(prefix="/api", tags=["photos"])
ROOT = Path(__file__).resolve().parents[2]
_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp)$")


def photo_dir() -> Path:
    """Where photos are kept: ``XIAOSAN_PHOTO_DIR``, by default ``var/photos`` in the project."""
    return Path(os.environ.get("XIAOSAN_PHOTO_DIR") or ROOT / "var" / "photos")


@router.post("/photos", status_code=201)
async def upload_photo(access: ReportAccess,
                       file: Annotated[UploadFile, File(description="JPEG, PNG or WebP")]):
    """Store one photo; answers its ``ref`` (201 new, 200 already stored)."""
    limit = current().photo_bytes
    data = await file.read(limit + 1)
    photo = check_photo(data)
    digest = hashlib.sha256(data).hexdigest()
    name = f"{digest}.{_EXT[photo.media_type]}"
    folder = photo_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    existed = target.exists()
    if not existed:
        partial = folder / f".{name}.{os.getpid()}.part"
        partial.write_bytes(data)
        os.replace(partial, target)  # atomic: a reader never sees half a photo
    body = {"ref": f"photo:{name}", "sha256": digest, "format": photo.format,
            "media_type": photo.media_type, "width": photo.width, "height": photo.height,
            "bytes": photo.size}
    return JSONResponse(body, status_code=200 if existed else 201)


@router.get("/photos/{name}", response_class=FileResponse,
            responses={200: {"content": {t: {} for t in sorted(set(PHOTO_TYPES.values()))}}})
def get_photo(name: str, access: ReadAccess):
    """One stored photo by the name in its ``ref``."""
    name = name.removeprefix("photo:")
    path = photo_dir() / name
    if not _NAME.match(name) or not path.is_file():
        raise HTTPException(404, f"photo: no photo {name}")
    media = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}[name.rsplit(".")[-1]]
    return FileResponse(path, media_type=media)
