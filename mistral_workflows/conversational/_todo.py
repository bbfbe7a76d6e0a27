"""`TodoList` and `TodoListItem`: a checklist whose items' statuses stream as they change.

    item = TodoListItem(title="Validate", description="Check the receipts")
    async with TodoList(items=[item]):
        async with item:  # in_progress, then done
            ...

A `TodoList` is a `Task` of type `todo_list` whose state is a `TodoListState`; every
status change, added or removed item publishes the difference. It works in activities
(`with` and no `await` in a `def` activity) and in workflow code, like any `Task`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType

from temporalio import workflow

from mistral_workflows.conversational._models import (
    TODO_LIST,
    TodoListItemState,
    TodoListItemStatus,
    TodoListState,
)
from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.task import _DONE, Task
from mistral_workflows.core.task_thread import running_loop

__all__ = ["TodoList", "TodoListItem"]

_STATUSES = ("todo", "in_progress", "done")


class TodoListItem:
    """One step of a `TodoList`.

    Used as a context manager (`async with item:`, or `with item:` in a `def` activity),
    the item turns `in_progress` on entry and `done` when the block is left normally.
    When an exception leaves the block, the item stays `in_progress` (Mistral's statuses
    have no failed one) and the exception propagates: if it leaves the list's block too,
    the list ends `CUSTOM_TASK_FAILED` with its message, so consumers see which step was
    running and why it stopped.

    Args:
        title: The step's title.
        description: What the step does.
        id: The item id; by default a UUID (from `workflow.uuid4()` in workflow code,
            so that replay gives the same one).
    """

    def __init__(self, title: str, description: str, *, id: str | None = None) -> None:
        self._id: str = _new_id() if id is None else id
        self._title = title
        self._description = description
        self._status: TodoListItemStatus = "todo"
        self._todo_list: TodoList | None = None

    @property
    def id(self) -> str:
        return self._id

    @property
    def title(self) -> str:
        return self._title

    @property
    def description(self) -> str:
        return self._description

    @property
    def status(self) -> TodoListItemStatus:
        return self._status

    def _check_free(self, todo_list: TodoList) -> None:
        if self._todo_list is not None and self._todo_list is not todo_list:
            raise RuntimeError(
                f"todo item {self._title!r} already belongs to another TodoList; "
                "make a new TodoListItem for this list"
            )

    def _bind(self, todo_list: TodoList) -> None:
        self._check_free(todo_list)
        self._todo_list = todo_list

    def _unbind(self) -> None:
        self._todo_list = None

    def set_status(self, status: TodoListItemStatus) -> Awaitable[None]:
        """Set the item's status (`todo`, `in_progress` or `done`) and publish it.

        Await it in async code; in a `def` activity just call it: it returns once the
        change is accepted. If publishing fails, the item keeps its previous status.

        Raises:
            ConfigurationError: `status` is not one of the three.
            RuntimeError: the item is not in a `TodoList`, or the list's block is not open.
        """
        if status not in _STATUSES:
            raise ConfigurationError(
                f"todo item status must be one of {', '.join(_STATUSES)}, not {status!r}"
            )
        if self._todo_list is None:
            raise RuntimeError(
                f"todo item {self._title!r} is in no TodoList: pass it in "
                "TodoList(items=[...]) or add it with `await todo_list.add_item(item)`"
            )
        previous, self._status = self._status, status
        return self._todo_list._publish(lambda: setattr(self, "_status", previous))

    async def __aenter__(self) -> TodoListItem:
        await self.set_status("in_progress")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.set_status("done")

    def __enter__(self) -> TodoListItem:
        if running_loop() is not None:
            raise RuntimeError(
                "use `async with item:` on an event loop; `with item:` is for `def` activities"
            )
        self.set_status("in_progress")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.set_status("done")


class TodoList(Task[TodoListState]):
    """A checklist streamed as a `todo_list` task.

    Args:
        items: The steps, in order (each item belongs to one list).
        id: The task id; by default derived like any `Task`'s.

    Raises:
        NotInPluggedActivityError: not in an activity (or workflow) of a plugged worker.
        RuntimeError: an item already belongs to another list.
        ValueError: an item appears twice in `items`.
    """

    def __init__(self, items: list[TodoListItem] | None = None, id: str | None = None) -> None:
        self._todo_items: list[TodoListItem] = list(items or [])
        if len(set(self._todo_items)) != len(self._todo_items):
            raise ValueError("a TodoListItem appears twice in items; make one item per step")
        for item in self._todo_items:
            item._check_free(self)
        super().__init__(type=TODO_LIST, state=self._build_state(), id=id)
        for item in self._todo_items:
            item._bind(self)

    @property
    def items(self) -> list[TodoListItem]:
        """The items, in order (a copy: add and remove them with the methods)."""
        return list(self._todo_items)

    def add_item(self, item: TodoListItem) -> Awaitable[None]:
        """Append `item` and publish it (await it, except in a `def` activity)."""
        if item in self._todo_items:
            raise ValueError(f"todo item {item.title!r} is already in this TodoList")
        item._bind(self)
        self._todo_items.append(item)

        def undo() -> None:
            self._todo_items.remove(item)
            item._unbind()

        return self._publish(undo)

    def remove_item(self, item: TodoListItem) -> Awaitable[None]:
        """Remove `item` and publish the change (await it, except in a `def` activity)."""
        if item not in self._todo_items:
            raise ValueError(f"todo item {item.title!r} is not in this TodoList")
        at = self._todo_items.index(item)
        item._unbind()
        self._todo_items.remove(item)

        def undo() -> None:
            self._todo_items.insert(at, item)
            item._bind(self)

        return self._publish(undo)

    def _build_state(self) -> TodoListState:
        return TodoListState(
            items=[
                TodoListItemState(
                    id=item.id, status=item.status, title=item.title, description=item.description
                )
                for item in self._todo_items
            ]
        )

    def _publish(self, undo: Callable[[], None]) -> Awaitable[None]:
        """Publish the items as they are now; if that fails, `undo` puts them back."""
        if running_loop() is None:  # a `def` activity's thread: done before returning
            try:
                self.set_state(self._build_state())
            except BaseException:
                undo()
                raise
            return _DONE
        return self._publish_async(undo)

    async def _publish_async(self, undo: Callable[[], None]) -> None:
        try:
            await self.set_state(self._build_state())
        except BaseException:
            undo()
            raise

    async def __aenter__(self) -> TodoList:
        await super().__aenter__()
        return self

    def __enter__(self) -> TodoList:
        super().__enter__()
        return self


def _new_id() -> str:
    # Workflow code must give the same id on replay.
    return str(workflow.uuid4() if workflow.in_workflow() else uuid.uuid4())
