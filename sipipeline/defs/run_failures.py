"""Why a run failed, in one line: the root cause from the step failure, not Dagster's wrapper."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

#: Messages Dagster puts around the user's error; the cause below them says what went wrong.
WRAPPER_MESSAGES = ("Error occurred while executing", "Exceeded max_retries",
                    "Error occurred while loading input", "Error occurred while handling output")


def _chain(error: SerializableErrorInfo | None) -> list[SerializableErrorInfo]:
    chain = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.cause or error.context
    return chain


def _message_of(info: SerializableErrorInfo) -> str:
    """The message without the `package.module.Class: ` prefix the traceback module adds."""
    message = info.message.strip()
    head, separator, rest = message.partition(": ")
    if separator and info.cls_name and (head == info.cls_name
                                        or head.endswith("." + info.cls_name)):
        return rest.strip()
    return message


def root_cause(error: SerializableErrorInfo) -> str:
    """The first error in the cause chain that is not a Dagster wrapper, as `Class: message`
    (just the message for `dg.Failure`, whose description was written for people)."""
    chain = _chain(error)
    for info in chain:
        message = _message_of(info)
        if info is not chain[-1] and message.startswith(WRAPPER_MESSAGES):
            continue
        if not info.cls_name or info.cls_name == "Failure":
            return message
        return f"{info.cls_name}: {message}"
    return _message_of(error)


def failure_summary(events: Iterable[dg.DagsterEvent]) -> str:
    """`<step>: <root cause>` of the first failed step, else of the failed run itself, on one
    line."""
    return " ".join(_failure_summary(events).split())


def _failure_summary(events: Iterable[dg.DagsterEvent]) -> str:
    run_failure = None
    for event in events:
        if event.is_step_failure and event.step_failure_data is not None:
            cause = root_cause(event.step_failure_data.error)
            return cause if cause.startswith(f"{event.step_key}: ") else (
                f"{event.step_key}: {cause}")
        if event.is_run_failure:
            run_failure = event
    data = getattr(run_failure, "event_specific_data", None)
    error = getattr(data, "error", None)
    if error is not None:
        return root_cause(error)
    if run_failure is not None and run_failure.message:
        return run_failure.message
    return "see the run in the UI"
