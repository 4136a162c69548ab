"""The registry page's view of the rows: every row sorted and listed for review and agenda, the
caseload table one page of PAGE_ROWS at a time (a page of 1,000 rows costs more to render than
to read from the store)."""

from __future__ import annotations

from typing import Any

import pytest

from smart_app.registry import PAGE_ROWS, page_context


def _row(i: int, flags: list[str] | None = None, status: str = "") -> dict[str, Any]:
    return {"id": f"p{i:05d}", "name": f"Patient {i:05d}", "flags": flags or [], "status": status,
            "review": "not improving" in (flags or []), "phq9": None, "change": None,
            "weeks": None, "last_contact": ""}


@pytest.mark.parametrize(
    ("count", "page", "shown_page", "pages", "first"),
    [
        pytest.param(0, 1, 1, 1, None, id="empty-one-page"),
        pytest.param(PAGE_ROWS, 1, 1, 1, "p00000", id="exactly-one-page"),
        pytest.param(PAGE_ROWS + 1, 2, 2, 2, f"p{PAGE_ROWS:05d}", id="one-more-row-second-page"),
        pytest.param(PAGE_ROWS + 1, 9, 2, 2, f"p{PAGE_ROWS:05d}", id="past-the-end-last-page"),
        pytest.param(PAGE_ROWS + 1, 0, 1, 2, "p00000", id="before-the-start-first-page"),
    ],
)
def test_the_caseload_table_is_paged(
    count: int, page: int, shown_page: int, pages: int, first: str | None
) -> None:
    context = page_context([_row(i) for i in range(count)], None, "name", page)
    assert (context["page"], context["pages"]) == (shown_page, pages)
    table = context["table_rows"]
    assert len(table) <= PAGE_ROWS
    assert (table[0]["id"] if table else None) == first


def test_review_agenda_and_apart_cover_every_row_not_only_the_page() -> None:
    rows = [_row(i) for i in range(2 * PAGE_ROWS)]
    rows.append(_row(9998, ["not improving"]))
    rows.append(_row(9999, status="deceased"))
    context = page_context(rows, None, "name", 1)
    assert "p09998" not in {r["id"] for r in context["table_rows"]}  # on the last page
    assert [r["id"] for r in context["review"]] == ["p09998"]
    assert [r["id"] for r in context["agenda"]] == ["p09998"]
    assert "p09999" in {r["id"] for r in context["rows"]}  # listed apart, not in the table
    assert all(not r["status"] for r in context["table_rows"])
    flagged = page_context(rows, "not improving", "name", 1)
    assert [r["id"] for r in flagged["table_rows"]] == ["p09998"] and flagged["pages"] == 1
