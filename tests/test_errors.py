"""The one error tree (nexus/errors.py): one root, the drawing in its docstring, the built-in bases kept."""

from __future__ import annotations

import inspect
import pickle
import re

import pybreaker
import pytest

from nexus import errors
from nexus.errors import (
    AuditLost,
    AuditNotFound,
    BreakerOpenError,
    BudgetExceededError,
    CircuitOpenError,
    FrontDoorError,
    InvalidInput,
    NexusClientError,
    NexusError,
    ServiceUnavailable,
    ThrottledError,
    WaitTimeout,
    WaiverNotFound,
    counts_against_breaker,
    is_retryable,
    is_system_answer,
)

CLASSES = [obj for name, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, BaseException)
           and obj.__module__ == errors.__name__]


def _drawn() -> dict[str, int]:
    """Class name -> indentation level in the docstring's tree."""
    out: dict[str, int] = {}
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^    ((?:[| ] {3})*)(?:\+-- )?([A-Z]\w+)\s", line)
        if match:
            out[match.group(2)] = len(match.group(1)) // 4 + (1 if "+--" in line else 0)
    return out


def test_every_class_is_under_one_root_and_in_the_drawing() -> None:
    drawn = _drawn()
    assert {c.__name__ for c in CLASSES} == set(drawn)
    assert all(issubclass(c, NexusError) for c in CLASSES)
    assert set(errors.__all__) >= {c.__name__ for c in CLASSES}


def test_the_drawing_matches_the_classes() -> None:
    """Each drawn class is a direct subclass of the nearest class drawn one level up before it."""
    lines = [(name, level) for name, level in _drawn().items()]
    for i, (name, level) in enumerate(lines):
        if level == 0:
            continue
        parent = next(n for n, lv in reversed(lines[:i]) if lv == level - 1)
        assert getattr(errors, parent) in getattr(errors, name).__bases__, (name, parent)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [(InvalidInput, ValueError), (WaiverNotFound, ValueError), (AuditNotFound, KeyError),
     (ServiceUnavailable, RuntimeError), (AuditLost, RuntimeError), (WaitTimeout, TimeoutError),
     (BreakerOpenError, pybreaker.CircuitBreakerError)],
)
def test_existing_except_clauses_keep_working(cls: type[Exception], builtin: type[Exception]) -> None:
    error = cls("x") if cls is not BreakerOpenError else cls("x", system="workday")
    with pytest.raises(builtin):
        raise error
    assert isinstance(error, NexusError)


def test_front_door_errors_share_a_base_and_keep_their_message() -> None:
    for cls in (InvalidInput, WaiverNotFound, AuditNotFound, ServiceUnavailable, AuditLost, WaitTimeout):
        assert issubclass(cls, FrontDoorError) and not issubclass(cls, NexusClientError)
    assert str(InvalidInput("no audit with id x")) == "no audit with id x"
    assert str(WaitTimeout("still running after 5s")) == "still running after 5s"
    assert AuditNotFound("abc").args == ("abc",)
    for error in (InvalidInput("bad"), AuditNotFound("abc"), WaitTimeout("late"), AuditLost("gone")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and copy.args == error.args


def test_a_local_budget_refusal_is_a_class_not_an_answer() -> None:
    budget = BudgetExceededError("budget", system="intune", status=None, retry_after=2.0)
    assert isinstance(budget, ThrottledError) and is_retryable(budget)
    assert not is_system_answer(budget) and not counts_against_breaker(budget)
    assert is_system_answer(ThrottledError("429", system="intune"))


def test_breaker_open_is_a_circuit_open_error() -> None:
    error = BreakerOpenError("open", system="workday", retry_in_s=1.23456)
    assert isinstance(error, CircuitOpenError) and not is_retryable(error)
    assert error.to_dict() == {"type": "BreakerOpenError", "kind": "breaker_open", "message": "open",
                               "retry_in_s": 1.235}
