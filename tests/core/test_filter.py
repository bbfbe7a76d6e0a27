"""Tests of `EventFilter`: its checks, its subject filter and what it keeps of an event."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistral_workflows.core.envelope import envelope
from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.events import EVENT_TYPES, EventType, StreamEvent
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.core.subjects import (
    DEFAULT_PREFIX,
    LIFECYCLE_STREAM,
    event_subject,
    subject_matches,
)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"workflow_exec_id": 5}, "the workflow_exec_id filter must be a str"),
        ({"root_workflow_exec_id": b"r"}, "the root_workflow_exec_id filter must be a str"),
        ({"parent_workflow_exec_id": 1.5}, "the parent_workflow_exec_id filter must be a str"),
        ({"namespace": ["default"]}, r"the namespace filter must be a str.*\(list\)"),
        ({"activity_id": 7}, "the activity_id filter must be a str"),
        ({"scope": "everything"}, "scope must be 'workflow' or 'activity', not 'everything'"),
        ({"event_types": ["NOPE"]}, r"unknown event type\(s\) \['NOPE'\]"),
        ({"event_types": "NOPE"}, r"unknown event type\(s\) \['NOPE'\]"),
        ({"stream": "a.b"}, "invalid stream type 'a.b'"),
        ({"stream": 5}, "invalid stream type 5"),
        ({"stream": "_private"}, "invalid stream type"),
    ],
    ids=str,
)
def test_bad_value_is_a_configuration_error_naming_it(values, words) -> None:
    """A value of the wrong type, an unknown scope, an unknown event type or an illegal
    stream type raises ConfigurationError naming the field and the value."""
    with pytest.raises(ConfigurationError, match=words):
        EventFilter(**values)


def test_unknown_event_types_are_listed_as_plain_strings() -> None:
    """The message lists the known types as text, not as enum reprs."""
    with pytest.raises(ConfigurationError) as caught:
        EventFilter(event_types=["NOPE"])
    assert "'CUSTOM_TASK_STARTED'" in str(caught.value)
    assert "EventType." not in str(caught.value)


def test_good_values_build_a_filter() -> None:
    """Negative control: every field set to a valid value builds without error."""
    wanted = EventFilter(
        workflow_exec_id="a.b",
        root_workflow_exec_id="tenantB.>",
        parent_workflow_exec_id="*",
        workflow_name="W",
        activity_name="act",
        activity_id="1",
        stream=LIFECYCLE_STREAM,
        event_types=EVENT_TYPES,
        namespace="default",
        scope="activity",
    )
    assert wanted.wants(EventType.ACTIVITY_TASK_STARTED)


def test_event_types_become_a_frozenset_of_event_type() -> None:
    """One name or any iterable of names is kept as a frozenset of `EventType`."""
    one = EventFilter(event_types="CUSTOM_TASK_STARTED").event_types
    assert one == frozenset({EventType.CUSTOM_TASK_STARTED})
    kept = EventFilter(event_types=["CUSTOM_TASK_STARTED", "CUSTOM_TASK_STARTED"]).event_types
    assert kept == frozenset({EventType.CUSTOM_TASK_STARTED})
    assert all(type(t) is EventType for t in kept)
    assert EventFilter().event_types is None


def test_activity_implies_the_activity_scope() -> None:
    """An activity name or id reads as the activity scope, whatever scope was given."""
    assert EventFilter(activity_name="act").scope == "activity"
    assert EventFilter(activity_id="1", scope="workflow").scope == "activity"
    assert EventFilter(scope="workflow").scope == "workflow"


@given(st.sampled_from(sorted(EVENT_TYPES)), st.sets(st.sampled_from(sorted(EVENT_TYPES))))
def test_wants_exactly_the_given_types(event_type: str, chosen: set[str]) -> None:
    """`wants` keeps a type if and only if it was given, or none were given."""
    assert EventFilter(event_types=chosen).wants(event_type) == (event_type in chosen)
    assert EventFilter().wants(event_type)


def _event(stream: str, activity: str | None) -> StreamEvent:
    context = None
    if activity is not None:
        context = {"activity_name": activity, "activity_id": "1", "attempt": 1}
    ids = {
        "workflow_name": "W",
        "workflow_exec_id": "x",
        "root_workflow_exec_id": "x",
        "parent_workflow_exec_id": None,
    }
    body = envelope(
        stream=stream,
        event_type=EventType.WORKFLOW_EXECUTION_STARTED,
        event_id="e",
        attributes={"task_id": "x", "workflow_name": "W", "input": {"type": "json", "value": 1}},
        origin={**ids, "workflow_run_id": "run"},
        workflow_context={"namespace": "default", **ids},
        activity_context=context,
    )
    return StreamEvent.model_validate(body)


def test_matches_checks_stream_scope_activity_and_type() -> None:
    """`matches` keeps an event only if its stream, scope, activity and type are wanted."""
    in_workflow, in_activity = _event("s", None), _event("s", "act")
    assert EventFilter().matches(in_workflow) and EventFilter().matches(in_activity)
    assert not EventFilter(stream="other").matches(in_workflow)
    assert not EventFilter(scope="activity").matches(in_workflow)
    assert not EventFilter(scope="workflow").matches(in_activity)
    assert EventFilter(activity_name="act").matches(in_activity)
    assert not EventFilter(activity_name="other").matches(in_activity)
    assert not EventFilter(activity_id="2").matches(in_activity)
    assert not EventFilter(event_types=[EventType.WORKFLOW_EXECUTION_COMPLETED]).matches(
        in_workflow
    )
    assert EventFilter(event_types=[EventType.WORKFLOW_EXECUTION_STARTED]).matches(in_workflow)


@given(st.text(), st.text())
def test_subject_isolates_parents(first: str, second: str) -> None:
    """A filter on parent A matches the events of A's children, and B's only if B is A."""
    selected = EventFilter(parent_workflow_exec_id=first).subject(DEFAULT_PREFIX)
    child_of = {
        "namespace": "default",
        "stream": "s",
        "workflow_name": "W",
        "root_exec_id": "r",
        "exec_id": "x",
    }
    assert subject_matches(
        selected, event_subject(DEFAULT_PREFIX, **child_of, parent_exec_id=first)
    )
    other = event_subject(DEFAULT_PREFIX, **child_of, parent_exec_id=second)
    assert subject_matches(selected, other) == (first == second)
    assert not subject_matches(
        selected, event_subject(DEFAULT_PREFIX, **child_of, parent_exec_id=None)
    )
