"""Streaming export for connectors against a real ``reactor serve``: ``/api/json_schemas``,
``/api/list_snapshot`` (one consistent snapshot across pages while writes land between them)
and ``/api/document_deltas`` (inserts, updates and deletes after the snapshot, in commit order,
page by page), all behind the admin key. A connector's replica (snapshot, then deltas applied
by ``_id``) must equal the deployment's data."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:  # conftest is pytest's to import; its classes serve as types only
    from .conftest import ReactorServer

APP = {
    "schema.py": """
        from schema import define_schema, define_table, v

        schema = define_schema({
            "items": define_table({"name": v.string(), "n": v.float64(), "big": v.int64()}),
            "tags": define_table({"label": v.string()}),
        })
    """,
    "items.py": """
        from functions import mutation
        from schema import v

        @mutation(args={"name": v.string(), "n": v.float64()})
        async def add(ctx, name, n):
            return await ctx.db.insert("items", {"name": name, "n": n, "big": 2**40})

        @mutation(args={"id": v.id("items"), "n": v.float64()})
        async def set_n(ctx, id, n):
            await ctx.db.patch(id, {"n": n})

        @mutation(args={"id": v.id("items")})
        async def remove(ctx, id):
            await ctx.db.delete(id)

        @mutation(args={"label": v.string()})
        async def tag(ctx, label):
            return await ctx.db.insert("tags", {"label": label})
    """,
}


class Api:
    def __init__(self, server: ReactorServer) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.url, timeout=10)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Convex {self.server.admin_key}"}

    def mutate(self, path: str, **args: Any) -> Any:
        response = self.client.post(
            "/api/mutation", json={"path": path, "args": args}, headers=self.headers()
        )
        body = response.json()
        assert body["status"] == "success", body
        return body["value"]

    def get(self, route: str, **params: Any) -> dict[str, Any]:
        response = self.client.get(route, params=params, headers=self.headers())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def refused(
        self, route: str, status: int, *, headers: dict[str, str] | None = None, **params: Any
    ) -> dict[str, Any]:
        response = self.client.get(
            route, params=params, headers=self.headers() if headers is None else headers
        )
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        assert set(body) == {"code", "message"}, body
        return body


@pytest.fixture(scope="module")
def api(
    app_server_factory: Callable[..., ReactorServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    app_dir = tmp_path_factory.mktemp("streaming_export_app")
    for name, text in APP.items():
        (app_dir / name).write_text(textwrap.dedent(text).lstrip())
    api = Api(app_server_factory(app_dir=app_dir))
    with api.client:
        yield api


def walk_snapshot(
    api: Api, *, page_size: int, between: Callable[[], None] = lambda: None, **params: Any
) -> tuple[list[dict[str, Any]], int, int]:
    """Every document of one list_snapshot walk, its snapshot ts and the number of pages;
    ``between`` runs after every page (writes landing during the walk)."""
    page = api.get("/api/list_snapshot", pageSize=page_size, **params)
    snapshot = page["snapshot"]
    values, pages = list(page["values"]), 1
    while page["hasMore"]:
        between()
        page = api.get(
            "/api/list_snapshot",
            pageSize=page_size,
            snapshot=snapshot,
            cursor=page["cursor"],
            **params,
        )
        assert page["snapshot"] == snapshot
        values += page["values"]
        pages += 1
    return values, snapshot, pages


def replica_of(values: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        doc["_id"]: {k: v for k, v in doc.items() if k not in ("_ts", "_deleted", "_component")}
        for doc in values
        if not doc.get("_deleted")
    }


def test_json_schemas_describe_each_table(api: Api) -> None:
    schemas = api.get("/api/json_schemas")
    assert set(schemas) >= {"items", "tags"}
    items = schemas["items"]
    assert items["type"] == "object"
    assert items["properties"]["name"] == {"type": "string"}
    assert items["properties"]["big"]["type"] == "string"  # int64 as a decimal string
    assert {"_id", "_creationTime", "name", "n", "big"} <= set(items["required"])
    assert "_ts" not in items["properties"]
    delta = api.get("/api/json_schemas", deltaSchema="true")["items"]["properties"]
    assert delta["_ts"] == {"type": "integer"} and delta["_deleted"] == {"type": "boolean"}


def test_a_snapshot_walk_is_consistent_while_writes_land_then_deltas_catch_up(api: Api) -> None:
    ids = [api.mutate("items:add", name=f"item{i}", n=float(i)) for i in range(7)]
    tag = api.mutate("items:tag", label="t0")
    changes: Iterator[Callable[[], Any]] = iter(
        [
            lambda: api.mutate("items:add", name="late", n=100.0),
            lambda: api.mutate("items:set_n", id=ids[6], n=-6.0),
            lambda: api.mutate("items:remove", id=ids[0]),
            lambda: api.mutate("items:tag", label="t1"),
        ]
    )

    def write() -> None:
        change = next(changes, None)
        if change is not None:
            change()

    values, snapshot, pages = walk_snapshot(api, page_size=3, between=write)
    assert pages >= 3
    items = {doc["_id"]: doc for doc in values if doc["_table"] == "items"}
    # The snapshot holds every item as it was when the walk began: the late insert is absent,
    # the removed item present, the patched one unpatched.
    assert set(ids) <= set(items)
    assert "late" not in {doc["name"] for doc in items.values()}
    assert items[ids[6]]["n"] == 6.0 and items[ids[0]]["name"] == "item0"
    assert items[ids[1]]["big"] == str(2**40)
    assert all(doc["_ts"] == snapshot for doc in values)
    assert tag in {doc["_id"] for doc in values if doc["_table"] == "tags"}
    assert len({doc["_id"] for doc in values}) == len(values)  # no page repeated a document
    for change in changes:  # whatever the walk did not use up
        change()

    # Deltas after the snapshot, one document per page: every change, in commit order.
    deltas: list[dict[str, Any]] = []
    cursor = snapshot
    while True:
        page = api.get("/api/document_deltas", cursor=cursor, pageSize=1)
        deltas += page["values"]
        assert page["cursor"] >= cursor
        cursor = page["cursor"]
        if not page["hasMore"]:
            break
    assert [doc["_ts"] for doc in deltas] == sorted(doc["_ts"] for doc in deltas)
    assert all(doc["_ts"] > snapshot for doc in deltas)
    kinds = [
        ("delete" if doc["_deleted"] else doc.get("name", doc.get("label")), doc["_table"])
        for doc in deltas
    ]
    assert kinds == [("late", "items"), ("item6", "items"), ("delete", "items"), ("t1", "tags")]
    deleted = deltas[2]
    assert deleted["_id"] == ids[0] and set(deleted) == {
        "_id",
        "_table",
        "_component",
        "_ts",
        "_deleted",
    }
    assert deltas[1]["n"] == -6.0

    # A replica built from the snapshot plus the deltas is the deployment's data now.
    replica = replica_of(values)
    for doc in deltas:
        if doc["_deleted"]:
            replica.pop(doc["_id"], None)
        else:
            replica[doc["_id"]] = replica_of([doc])[doc["_id"]]
    now, _, _ = walk_snapshot(api, page_size=1000)
    assert replica == replica_of(now)

    # Caught up: no more deltas, and the cursor stays put.
    page = api.get("/api/document_deltas", cursor=cursor)
    assert page == {"values": [], "hasMore": False, "cursor": cursor}


def test_one_table_and_the_encoded_format(api: Api) -> None:
    api.mutate("items:tag", label="only-tags")
    values, _, _ = walk_snapshot(api, page_size=2, tableName="tags", format="convex_json")
    assert values and {doc["_table"] for doc in values} == {"tags"}
    items, snapshot, _ = walk_snapshot(api, page_size=50, tableName="items", format="convex_json")
    assert all(doc["big"] == {"$integer": doc["big"]["$integer"]} for doc in items)
    api.mutate("items:tag", label="after")
    api.mutate("items:add", name="after", n=1.0)
    page = api.get("/api/document_deltas", cursor=snapshot, tableName="tags")
    assert [doc["label"] for doc in page["values"]] == ["after"]


def test_refusals_are_clear(api: Api) -> None:
    anonymous = api.refused("/api/list_snapshot", 403, headers={})
    assert "admin key" in anonymous["message"]
    wrong = api.refused(
        "/api/document_deltas",
        401,
        headers={"Authorization": "Convex reactor-admin|nope"},
        cursor=1,
    )
    assert wrong["code"] == "Unauthenticated"
    assert api.refused("/api/document_deltas", 400)["code"] == "DocumentDeltasCursorRequired"
    assert api.refused("/api/document_deltas", 400, cursor="soon")["code"] == "BadRequest"
    future = api.refused("/api/document_deltas", 400, cursor=2**62)
    assert future["code"] == "InvalidTimestamp" and "future" in future["message"]
    missing = api.refused("/api/list_snapshot", 400, tableName="nope")
    assert missing["code"] == "TableNotFound" and "'nope'" in missing["message"]
    snapshot = api.get("/api/list_snapshot", pageSize=1)["snapshot"]
    bad_cursor = api.refused("/api/list_snapshot", 400, snapshot=snapshot, cursor="garbage")
    assert bad_cursor["code"] == "InvalidCursor"
    assert api.refused("/api/list_snapshot", 400, format="xml")["code"] == "InvalidFormat"
    assert api.refused("/api/list_snapshot", 400, pageSize=0)["code"] == "InvalidPageSize"
