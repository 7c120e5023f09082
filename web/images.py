"""GET /image/<name>: an object from the S3 bucket, streamed, with HTTP caching and byte ranges.

One HEAD (stat_object) gives the ETag, Last-Modified and size; conditional GETs are answered 304
from it without reading the object, and a single byte range is fetched from the store as a range
(get_object offset/length), so neither a 304 nor a 206 ever reads more than it sends.
"""
from __future__ import annotations

from flask import Blueprint, Response, request
from minio.error import S3Error
from werkzeug.routing import BaseConverter

from citycache.read.images import IMAGE_NAME_RULE, valid_image_name
from web.errors import json_error
from web.resources import get_resources

bp = Blueprint("images", __name__)

CHUNK_BYTES = 1024 * 1024  # 64 KiB chunks cost a Python round per 64 KiB: 0.54-0.63x direct; 1 MiB: 0.72-0.89x
MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}
# Objects are replaced rarely; a minute of freshness, then a cheap revalidation by ETag.
CACHE_CONTROL = "public, max-age=60"


class AnyTextConverter(BaseConverter):
    """Matches any text, slashes and newlines included, so that every bad name reaches the check
    below and gets a 400 (the stock `path` converter does not match a newline: a 404 instead)."""
    regex = r"[\s\S]+"
    part_isolating = False


@bp.record_once
def _register_converter(state) -> None:
    state.app.url_map.converters["any_text"] = AnyTextConverter


def not_modified(etag: str, last_modified) -> bool:
    """RFC 9110 13.2.2: If-None-Match wins; If-Modified-Since counts only without it."""
    if request.if_none_match:
        return request.if_none_match.contains_weak(etag)
    since = request.if_modified_since
    return since is not None and last_modified is not None and last_modified.replace(microsecond=0) <= since


def byte_range(size: int, etag: str) -> tuple[int, int] | None | bool:
    """(start, stop) of a satisfiable single range; None to send everything; False if unsatisfiable."""
    wanted = request.range
    if wanted is None or len(wanted.ranges) != 1 or wanted.units != "bytes":
        return None  # no Range, or several ranges: the whole object (RFC 9110 allows ignoring it)
    if_range = request.if_range
    if if_range.etag is not None and if_range.etag != etag or if_range.date is not None:
        return None  # the client's copy is not this version (dates are too coarse to trust)
    return wanted.range_for_length(size) or False


@bp.get("/image/<any_text:name>")
def get_image(name: str):
    if not valid_image_name(name):
        return json_error(400, IMAGE_NAME_RULE)
    resources = get_resources()
    bucket = resources.settings.s3_bucket
    try:
        stat = resources.s3.stat_object(bucket, name)
    except S3Error as exc:
        if exc.code in MISSING:
            return json_error(404, f"no image named {name}")
        raise
    etag = (stat.etag or "").strip('"')
    headers = {"ETag": f'"{etag}"', "Cache-Control": CACHE_CONTROL, "Accept-Ranges": "bytes"}
    if stat.last_modified is not None:
        headers["Last-Modified"] = stat.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT")
    if not_modified(etag, stat.last_modified):
        return Response(status=304, headers=headers)

    size = stat.size
    wanted = byte_range(size, etag)
    if wanted is False:
        response = json_error(416, f"range not satisfiable: {name} has {size} bytes")
        response.headers.update(headers)
        response.headers["Content-Range"] = f"bytes */{size}"
        return response
    start, stop = wanted or (0, size)
    try:
        if wanted and stop > start:
            obj = resources.s3.get_object(bucket, name, offset=start, length=stop - start)
        else:
            obj = resources.s3.get_object(bucket, name)
    except S3Error as exc:
        if exc.code in MISSING:  # removed between the HEAD and the GET
            return json_error(404, f"no image named {name}")
        raise

    def body():
        try:
            yield from obj.stream(CHUNK_BYTES)
        finally:
            obj.close()
            obj.release_conn()

    headers["Content-Length"] = str(stop - start)
    status = 200
    if wanted:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return Response(body(), status=status, headers=headers, direct_passthrough=True,
                    content_type=stat.content_type or "application/octet-stream")
