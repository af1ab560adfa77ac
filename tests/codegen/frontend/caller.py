"""A typed Python caller of examples/teamtasks: mypy checks it against teamtasks_api.py, the
module `reactor codegen --python` writes (the e2e test copies both into one directory)."""

from __future__ import annotations

from teamtasks_api import TasksDoc, api

from client_sdk import ReactorClient


def titles(client: ReactorClient) -> list[str]:
    tasks: list[TasksDoc] = client.query(api.tasks.mine)
    return [task["title"] for task in tasks]


def add_and_complete(client: ReactorClient, title: str) -> str | None:
    task_id: str = client.mutation(api.tasks.add, {"title": title})
    url: str | None = client.query(api.tasks.attachment_url, {"id": task_id})
    if url is not None:
        print(url)
    for note in client.query(api.notifications.unread, {}):
        client.mutation(api.notifications.mark_read, {"id": note["_id"]})
    job: str | None = client.mutation(api.tasks.complete, {"id": task_id})
    return job


async def first_title(client: ReactorClient) -> str:
    tasks = await client.async_client.query(api.tasks.mine)
    return tasks[0]["title"] if tasks else ""
