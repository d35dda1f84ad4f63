"""One page of a listing and the loop that follows every page.

Every client exposes ``fetch_page(cursor) -> Page``: ONE request, its records, and an opaque cursor for the next
page (an offset, an ``@odata.nextLink``, a Lansweeper cursor, an LDAP paging cookie). Keeping the step separate from
the loop lets the fleet audit retry a failed page instead of the whole chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    total: int | None = None
    requests: int = 1  # requests this page sent (0: a chunk of a listing that read everything in one request)


def iter_pages(fetch_page: Callable[[str | None], Page[T]], *, max_pages: int = 1_000_000) -> Iterator[Page[T]]:
    """Follow ``next_cursor`` from the first page to the last. A cursor that repeats is a server bug: stop."""
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(max_pages):
        page = fetch_page(cursor)
        yield page
        if page.next_cursor is None or page.next_cursor in seen:
            return
        seen.add(page.next_cursor)
        cursor = page.next_cursor


def iter_all(fetch_page: Callable[[str | None], Page[T]]) -> Iterator[T]:
    for page in iter_pages(fetch_page):
        yield from page.items
