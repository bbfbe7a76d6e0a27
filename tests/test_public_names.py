"""The public names of each package: exactly the API we mean to offer."""

from __future__ import annotations

import pytest

import mistral_workflows as workflows
import mistral_workflows.consumer as consumer
import mistral_workflows.dev as dev
import mistral_workflows.gateway as gateway
import mistral_workflows.worker as worker
from mistral_workflows.core import errors


def test_package_names():
    """The package exports exactly the public API, and the reference doc's import works."""
    from mistral_workflows.core.task import Task

    assert workflows.Task is Task
    assert workflows.__all__ == sorted(workflows.__all__)
    assert sorted(workflows.__all__) == [
        "BrokerConnectionError",
        "ConfigurationError",
        "DecryptionError",
        "Encryption",
        "Gap",
        "InvalidStateError",
        "MistralWorkflowsError",
        "MistralWorkflowsPlugin",
        "NotInPluggedActivityError",
        "PatchError",
        "PayloadTooLargeError",
        "PublishError",
        "StreamEvent",
        "StreamMismatchError",
        "Task",
        "TaskState",
        "TaskStates",
        "TokenError",
        "activity",
        "subscribe",
        "subscribe_sync",
    ]


def test_every_exported_name_resolves_and_is_listed_by_dir():
    """Each name of __all__, lazy or not, is an attribute and shows in dir()."""
    for name in workflows.__all__:
        assert getattr(workflows, name) is not None, name
    assert set(workflows.__all__) <= set(dir(workflows))
    with pytest.raises(AttributeError, match="nothing_here"):
        _ = workflows.nothing_here


@pytest.mark.parametrize("name", ["DecryptionError", "PatchError", "TokenError"])
def test_errors_users_meet_are_exported_library_errors(name):
    """Every error a user can meet lives in core.errors, is exported, and is a library error."""
    error = getattr(errors, name)
    assert getattr(workflows, name) is error
    assert name in errors.__all__
    assert issubclass(error, workflows.MistralWorkflowsError)


def test_token_error_is_also_the_gateways():
    """TokenError stays importable from the gateway, where docs/gateway.md's readers look."""
    assert gateway.TokenError is workflows.TokenError


def test_gateway_names():
    """The gateway package exports what we mean to, the server's names on first use."""
    assert sorted(gateway.__all__) == [
        "GatewaySettings",
        "Grant",
        "SECRET_ENV",
        "TokenError",
        "check_secret",
        "create_app",
        "mint_token",
        "secret_from_env",
        "serve",
        "verify_token",
    ]
    assert callable(gateway.create_app) and callable(gateway.serve)
    with pytest.raises(AttributeError):
        _ = gateway.nothing_here


@pytest.mark.parametrize(
    ("package", "names"),
    [
        (consumer, ["Gap", "HumanView", "TaskState", "TaskStates", "subscribe", "subscribe_sync"]),
        (worker, ["MistralWorkflowsPlugin", "StreamSettings", "provision"]),
        (
            dev,
            [
                "EmbeddedServers",
                "NatsCluster",
                "NatsServer",
                "TemporalServer",
                "find_binary",
                "free_port",
                "serve",
            ],
        ),
    ],
    ids=["consumer", "worker", "dev"],
)
def test_subpackage_names(package, names):
    """The consumer, worker and dev packages export exactly their documented names."""
    assert package.__all__ == names
    assert all(hasattr(package, name) for name in names)


def test_tracing_names():
    """The tracing helpers are the three documented functions."""
    import mistral_workflows.tracing as tracing

    assert tracing.__all__ == ["parent_context", "span_context", "span_links"]


def test_conversational_names():
    """The conversational package exports Mistral's task types and state models by their
    Mistral names; TodoList and TodoListItem load on first use."""
    import mistral_workflows.conversational as conversational
    from mistral_workflows.conversational._todo import TodoList

    # Sorted as ruff sorts: the constants (TODO_LIST, WORKING: the task types) first.
    assert conversational.__all__ == sorted(
        conversational.__all__, key=lambda n: (n != n.upper(), n)
    )
    assert {"TodoList", "TodoListItem", "TodoListState", "ChatAssistantWorkingTask"} <= set(
        conversational.__all__
    )
    assert {"GenericToolUIState", "CommandToolUIState", "FileToolUIState"} <= set(
        conversational.__all__
    )
    assert conversational.TodoList is TodoList
    assert all(hasattr(conversational, name) for name in conversational.__all__)
    assert set(conversational.__all__) <= set(dir(conversational))
