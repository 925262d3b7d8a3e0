"""Automatic paging over List/Search RPCs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from google.protobuf.message import Message

Req = TypeVar("Req", bound=Message)


def iter_pages(method: Callable[[Req], Any], request: Req, items_field: str) -> Iterator[Any]:
    """Yield every item of ``items_field`` across all pages of ``method(request)``.

    The request is copied; its ``page_token`` is advanced with each response's
    ``next_page_token`` until that is empty.
    """
    req = type(request)()
    req.CopyFrom(request)
    while True:
        resp = method(req)
        yield from getattr(resp, items_field)
        token = resp.next_page_token
        if not token:
            return
        req.page_token = token  # type: ignore[attr-defined]
