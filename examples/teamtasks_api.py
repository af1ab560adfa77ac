"""Generated typed API of a Reactor app, for ``client_sdk`` callers.

THIS CODE IS AUTOMATICALLY GENERATED. To regenerate, run ``reactor codegen --python``.

``client.query(api.tasks.list, {"owner": "ann"})`` is checked by mypy: the arguments against
``TasksListArgs``, the result as the function's ``returns=`` type (``Any`` without one).
"""

# fmt: off
# ruff: noqa: E501

from __future__ import annotations

from typing import NotRequired, TypedDict

from client_sdk.references import MutationReference, NoArgs, QueryReference

__all__ = ["NotificationsDoc", "TasksDoc", "api", "internal"]


class NotificationsDoc(TypedDict):
    """A document of ``notifications``."""

    _id: str
    _creationTime: float
    owner: str
    message: str
    read: bool
    at: float


class TasksDoc(TypedDict):
    """A document of ``tasks``."""

    _id: str
    _creationTime: float
    owner: str
    title: str
    done: bool
    attachment: NotRequired[str]


class NotificationsMarkReadArgs(TypedDict):
    """The arguments of ``notifications:mark_read``."""

    id: str


class TasksAddArgs(TypedDict):
    """The arguments of ``tasks:add``."""

    title: str


class TasksAttachArgs(TypedDict):
    """The arguments of ``tasks:attach``."""

    id: str
    storageId: str


class TasksAttachmentUrlArgs(TypedDict):
    """The arguments of ``tasks:attachment_url``."""

    id: str


class TasksCompleteArgs(TypedDict):
    """The arguments of ``tasks:complete``."""

    id: str


class NotificationsNotifyArgs(TypedDict):
    """The arguments of ``notifications:notify``."""

    owner: str
    message: str


class NotificationsPurgeReadArgs(TypedDict):
    """The arguments of ``notifications:purge_read``."""

    batch: float
    now: NotRequired[float]


class TasksAddForArgs(TypedDict):
    """The arguments of ``tasks:add_for``."""

    owner: str
    title: str


class _api_notifications:
    """``notifications``"""

    mark_read: MutationReference[[NotificationsMarkReadArgs], None] = MutationReference("notifications:mark_read")
    unread: QueryReference[[NoArgs], list[NotificationsDoc]] = QueryReference("notifications:unread")


class _api_tasks:
    """``tasks``"""

    add: MutationReference[[TasksAddArgs], str] = MutationReference("tasks:add")
    attach: MutationReference[[TasksAttachArgs], None] = MutationReference("tasks:attach")
    attachment_upload_url: MutationReference[[NoArgs], str] = MutationReference("tasks:attachment_upload_url")
    attachment_url: QueryReference[[TasksAttachmentUrlArgs], str | None] = QueryReference("tasks:attachment_url")
    complete: MutationReference[[TasksCompleteArgs], str | None] = MutationReference("tasks:complete")
    mine: QueryReference[[NoArgs], list[TasksDoc]] = QueryReference("tasks:mine")


class api:
    """The app's public functions."""

    notifications = _api_notifications
    tasks = _api_tasks


class _internal_notifications:
    """``notifications``"""

    notify: MutationReference[[NotificationsNotifyArgs], None] = MutationReference("notifications:notify")
    purge_read: MutationReference[[NotificationsPurgeReadArgs], float] = MutationReference("notifications:purge_read")


class _internal_tasks:
    """``tasks``"""

    add_for: MutationReference[[TasksAddForArgs], str] = MutationReference("tasks:add_for")


class internal:
    """Internal functions (admin key)."""

    notifications = _internal_notifications
    tasks = _internal_tasks
