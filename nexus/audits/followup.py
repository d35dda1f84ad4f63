"""The follow-up rounds of a user or bulk part: who else the accounts found name, looked up before any verdict.

A person's first lookups (stage 1: every people directory asked for the audited address) show only the records
that carry that address. Three verdicts depend on records they do not show:

- ``orphaned_account``: an account found by a UPN that is not the worker's Workday email belongs to the worker its
  employee id names (``C-1001`` as well as ``100234``), so Workday is asked for that id before the account is
  called an orphan, and every directory for the accounts carrying it;
- ``ambiguous_account`` (two accounts for one worker): the second account may carry the worker's employee id and
  none of the worker's addresses; the directories' own lookups add every account carrying the employee id of an
  account they found (nexus.lookups), so this needs no round;
- ``ambiguous_account`` (one account matching two workers, by employee id one and by mail another): the worker an
  account's mail names is looked up in Workday by that address.

Each round asks only for what the previous rounds brought into view and nobody has asked yet; the rounds stop when
nothing new is wanted, or after :data:`MAX_ROUNDS`. A worker found only by an account's mail (the other side of a
dispute) is not followed further: their own accounts are their own audit's business. Workday failing in a
round leaves the person without a Workday answer (no verdict that needs one); a directory failing in a round is
failed for the people that round asked it about, with the reason.

The same replay (:class:`PersonView`) computes what a round dispatches and, afterwards, what the report is built
from, so the two cannot disagree. References are typed (``employee_id:<id>``, ``email:<address>``): the lookup op
``people_followup`` (nexus.lookups) never guesses what a reference is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus.lookups import EMAIL_REF, EMPLOYEE_ID_REF, FOLLOWUP_OP
from nexus.models import PersonRecord
from nexus.systems import USER_SYSTEMS, System

#: Follow-up rounds after the first lookups, at most (the deepest case, an account audited by its UPN that carries
#: one worker's employee id and another's mail, takes one; the cap bounds what a hostile directory can cause).
MAX_ROUNDS = 3
_DIRECTORIES: tuple[System, ...] = tuple(s for s in USER_SYSTEMS if s is not System.WORKDAY)

Results = Iterable[dict[str, Any]]


def employee_id_ref(employee_id: str) -> str:
    return EMPLOYEE_ID_REF + employee_id.strip()


def email_ref(address: str) -> str:
    return EMAIL_REF + address.strip().casefold()


def _fold(value: str | None) -> str:
    return (value or "").strip().casefold()


def split_results(results: Results) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """{system id: data} of the systems that answered, {system id: error} of those that failed."""
    data: dict[str, Any] = {}
    errors: dict[str, dict[str, Any]] = {}
    for result in results:
        if not isinstance(result, dict) or "system" not in result:
            continue
        if result.get("ok"):
            data[result["system"]] = result.get("data") or {}
        else:
            errors[result["system"]] = result.get("error") or {"type": "Unknown", "message": "no result"}
    return data, errors


def person_records(raw: Any) -> list[PersonRecord]:
    """A lookup's answer for one reference (a record, a list of them, or nothing) as records."""
    if not raw:
        return []
    if isinstance(raw, dict):
        return [PersonRecord.from_dict(raw)]
    return [PersonRecord.from_dict(r) for r in raw if r]


@dataclass(slots=True)
class PersonView:
    """What the lookups have shown about one audited address so far, and what has been asked."""

    email: str
    by_system: dict[str, list[PersonRecord] | None]
    errors: dict[str, dict[str, Any]]
    asked: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def first(cls, email: str, data: Mapping[str, Any], errors: Mapping[str, dict[str, Any]]) -> PersonView:
        by_system = {s.value: person_records(data[s.value].get(email)) if s.value in data else None
                     for s in USER_SYSTEMS}
        # stage 1 asked Workday for the audited address itself
        return cls(email, by_system, dict(errors), asked={System.WORKDAY.value: {email_ref(email)}})

    def wanted(self) -> dict[str, list[str]]:
        """The references to ask each system about next (none: the view is complete). Nothing while Workday has
        no answer: without the workers no follow-up can change a verdict."""
        workers = self.by_system.get(System.WORKDAY.value)
        if workers is None:
            return {}
        worker_ids = {_fold(w.employee_id) for w in workers if w.employee_id}
        worker_addresses = {_fold(a) for w in workers for a in (w.email, w.upn, *w.aliases) if a}
        want: dict[str, dict[str, None]] = {s.value: {} for s in USER_SYSTEMS}
        for directory in _DIRECTORIES:
            for account in self.by_system.get(directory.value) or ():
                eid = (account.employee_id or "").strip()
                if eid and _fold(eid) not in worker_ids:
                    for system in USER_SYSTEMS:  # the worker it names, and that worker's accounts
                        want[system.value][employee_id_ref(eid)] = None
                # the worker its mail names (one account matching two workers); its UPN is often an address of
                # its own (``sam@corp.example``) and is not followed: that would cost a Workday lookup per person
                if account.email and account.email.strip() and _fold(account.email) not in worker_addresses:
                    want[System.WORKDAY.value][email_ref(account.email)] = None
        out: dict[str, list[str]] = {}
        for system_id, refs in want.items():
            if self.by_system.get(system_id) is None:
                continue  # failed already for this person
            new = [r for r in refs if r not in self.asked.get(system_id, set())]
            if new:
                out[system_id] = new
        return out

    def absorb(self, wanted: Mapping[str, Sequence[str]], data: Mapping[str, Any],
               errors: Mapping[str, dict[str, Any]]) -> None:
        """Add one round's answers for what :meth:`wanted` asked."""
        for system, refs in wanted.items():
            self.asked.setdefault(system, set()).update(refs)
            found = self.by_system.get(system)
            if found is None:
                continue
            if system in errors or system not in data:
                why = errors.get(system) or {"type": "Unknown", "message": "no result"}
                self.by_system[system] = None
                self.errors[system] = {**why, "message": "looking up the workers and accounts its accounts name "
                                                         "(employee ids, addresses): "
                                                         + str(why.get("message") or why.get("type") or "failed")}
                continue
            keys = {r.key for r in found}
            for ref in refs:
                for record in person_records(data[system].get(ref)):
                    if record.key not in keys:
                        keys.add(record.key)
                        found.append(record)


def replay(emails: Sequence[str], stage1: Results, rounds: Sequence[Results]) -> list[PersonView]:
    """The views after stage 1 and the follow-up ``rounds`` so far (each round: the results of its fetches)."""
    data, errors = split_results(stage1)
    views = [PersonView.first(email, data, errors) for email in emails]
    for results in rounds:
        round_data, round_errors = split_results(results)
        for view in views:
            if wanted := view.wanted():
                view.absorb(wanted, round_data, round_errors)
    return views


def next_round(views: Iterable[PersonView]) -> dict[str, list[str]]:
    """What the next round asks each system (the union over the part's people; empty: no round)."""
    out: dict[str, dict[str, None]] = {}
    for view in views:
        for system, refs in view.wanted().items():
            out.setdefault(system, {}).update(dict.fromkeys(refs))
    return {system: list(refs) for system, refs in out.items()}


__all__ = ["EMAIL_REF", "EMPLOYEE_ID_REF", "FOLLOWUP_OP", "MAX_ROUNDS", "PersonView", "email_ref",
           "employee_id_ref", "next_round", "person_records", "replay", "split_results"]
