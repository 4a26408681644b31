"""What one check found: ok, a problem (with what to do), or not checked; each bounded in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from adapters.outages import summary

T = TypeVar("T")


class Verdict(StrEnum):
    OK = "ok"
    PROBLEM = "PROBLEM"
    NOT_CHECKED = "--"


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report, and the lines under it (e.g. links)."""

    check: str
    verdict: Verdict
    says: str
    todo: str = ""
    """For a problem: what an operator does about it, as a sentence."""
    details: tuple[str, ...] = ()

    @property
    def is_problem(self) -> bool:
        return self.verdict is Verdict.PROBLEM

    def lines(self) -> list[str]:
        """The report's lines for this finding, the first naming the check."""
        first = f"{self.verdict.value:<8} {self.check}: {self.says}"
        if self.todo:
            first += f". {self.todo}"
        return [first, *(f"{'':<8}   {detail}" for detail in self.details)]


def ok(check: str, says: str, details: tuple[str, ...] = ()) -> Finding:
    return Finding(check, Verdict.OK, says, details=details)


def problem(check: str, says: str, todo: str, details: tuple[str, ...] = ()) -> Finding:
    return Finding(check, Verdict.PROBLEM, says, todo, details)


def not_checked(check: str, because: str) -> Finding:
    return Finding(check, Verdict.NOT_CHECKED, f"not checked: {because}")


async def bounded(work: Awaitable[T], seconds: float) -> T:
    """`work`'s result, or TimeoutError after `seconds`: a service that hangs must not."""
    return await asyncio.wait_for(work, seconds)


COMMON_REASONS = (
    ("connection refused", "connection refused"),
    ("connect call failed", "connection refused"),
    ("unable to bootstrap", "connection refused"),
    ("name or service not known", "host not found"),
    ("failed to lookup address", "host not found"),
    ("nodename nor servname", "host not found"),
    ("password authentication failed", "password refused"),
    ("timed out", "timed out"),
)
"""Phrases of drivers' long connection errors, and what they mean in a word or two."""


def client_timeout_ms(within: float) -> int:
    """A client's own timeout: past `bounded`'s, so that the bound is what a hang hits."""
    return int(within * 2000) + 1000


def failure_text(error: BaseException, seconds: float) -> str:
    """An error as a short phrase for a report line."""
    if isinstance(error, TimeoutError):
        return f"no answer within {seconds:g} s"
    text = str(error).lower()
    for phrase, reason in COMMON_REASONS:
        if phrase in text:
            return reason
    return summary(error)
