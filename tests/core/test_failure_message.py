"""One description of an exception for every event that reports a failure (a task's, an
activity's, a workflow's)."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from mistral_workflows.core.envelope import failure_message


def test_names_the_exception_type_and_message():
    """A plain exception is shown as its class name and its message."""
    assert failure_message(ValueError("model quota exceeded")) == (
        "ValueError: model quota exceeded"
    )


def test_an_empty_message_shows_the_type_alone():
    """An exception without a message is shown as its class name."""
    assert failure_message(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_uses_the_application_error_type():
    """An ApplicationError is shown with the type its raiser gave it, once."""
    assert failure_message(ApplicationError("no credit", type="Quota")) == "Quota: no credit"


def test_an_application_error_with_a_type_and_no_message_shows_the_type():
    """A typed ApplicationError without a message is shown as its type."""
    assert failure_message(ApplicationError("", type="Quota")) == "Quota"


def test_an_application_error_without_type_shows_its_class():
    """Without a type, an ApplicationError is shown as any exception."""
    assert failure_message(ApplicationError("no credit")) == "ApplicationError: no credit"


def test_redacts_credentials():
    """A password in the message is masked: events are stored in clear text."""
    message = failure_message(ConnectionError("postgres://app:hunter2@db failed"))
    assert "hunter2" not in message and "***" in message


def test_cuts_long_messages():
    """A long message is cut and says how much was left out."""
    message = failure_message(RuntimeError("x" * 5000))
    assert message == "RuntimeError: " + "x" * 4000 + "... (1000 more characters)"
