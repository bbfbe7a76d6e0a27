"""Folding chat-completion chunks into a chat_turn state, without servers."""

from __future__ import annotations

import pytest

from mistral_workflows.agents import ChatTurnBuilder, ChatTurnState, ToolCallState
from mistral_workflows.agents.chat import stream_chat_completion
from tests.agents.scripted import chunk, tool_delta


def test_mistral_sends_whole_arguments_and_repeats_null_ids():
    """Arguments given as an object become JSON text; a later "null" id keeps the first."""
    builder = ChatTurnBuilder()
    first = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": {"a": 1}}}
    builder.feed(chunk({"tool_calls": [first]}))
    builder.feed(chunk(tool_delta(0, "null", "", "")))
    (call,) = ChatTurnState.model_validate(builder.state).tool_calls
    assert (call.toolCallId, call.arguments, call.parsed_arguments()) == (
        "call_1",
        '{"a":1}',
        {"a": 1},
    )


def test_a_delta_without_index_takes_its_position():
    """Providers that omit `index` are read by position in the delta."""
    builder = ChatTurnBuilder()
    calls = [
        {"id": "a", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "function": {"name": "g"}},
    ]
    builder.feed(chunk({"tool_calls": calls}))
    assert [c["toolCallId"] for c in builder.state["tool_calls"]] == ["a", "b"]


def test_a_chunk_that_changes_nothing_reports_nothing():
    """An empty delta, or a repeated model name, yields no update (so no event)."""
    builder = ChatTurnBuilder()
    assert builder.feed(chunk({"role": "assistant", "content": ""})) == {"model": "scripted"}
    assert builder.feed(chunk({})) == {}


def test_negative_control_a_lost_chunk_changes_the_result():
    """Negative control: dropping a piece of arguments gives other state, so the exact
    sequences asserted by the stream tests would catch a lost chunk."""
    pieces = [chunk(tool_delta(0, "c", "f", '{"ci')), chunk(tool_delta(0, args='ty": 1}'))]
    whole, lossy = ChatTurnBuilder(), ChatTurnBuilder()
    for piece in pieces:
        whole.feed(piece)
    lossy.feed(pieces[0])
    assert whole.state != lossy.state
    assert ToolCallState.model_validate(lossy.state["tool_calls"][0]).parsed_arguments() == {
        "_raw": '{"ci'
    }


def test_several_choices_are_refused():
    """A stream asked with n > 1 is refused with what to do."""
    two = chunk({"content": "x"})
    two["choices"].append({"index": 1, "delta": {"content": "y"}, "finish_reason": None})
    with pytest.raises(ValueError, match="ask for n=1"):
        ChatTurnBuilder().feed(two)


async def test_a_coroutine_instead_of_a_stream_is_refused():
    """Forgetting to await the client's call gets a message saying what to pass."""

    async def create() -> None: ...

    coroutine = create()
    with pytest.raises(TypeError, match="needs an async chunk stream, got coroutine"):
        await stream_chat_completion("chat_turn", coroutine)  # type: ignore[arg-type]
    coroutine.close()


def test_to_message_is_the_assistant_message():
    """The assembled turn as an OpenAI-style assistant message."""
    turn = ChatTurnState(
        content="", tool_calls=[ToolCallState(index=0, toolCallId="a", name="f", arguments="{}")]
    )
    assert turn.to_message() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
