"""Which systems each drift rule reads: the one table the engine's gates and the drift history both use.

A rule (docs/drift-rules.md) produces findings of some fields between two systems. Three sets describe it:

- ``requires``: the rule runs only when these were read (the engine's gate; usually the two systems it names);
- ``inputs``: also read by the rule, and their data decides whether a finding exists at all: the device rules
  resolve the owner across Workday, AD and Entra and take the owner's standing from Workday and the device's use
  from the Helix register. With an input missing, the rule still runs, but a finding can vanish without the drift
  having gone (an Intune ``compliance`` finding needs the owner's Workday status and the Helix register);
- ``unless``: a fallback rule runs only while these could NOT be read (AD vs Entra while Workday is down; Intune vs
  Lansweeper owner while Helix is down). When they were read, the fallback did not run and proved nothing.

:func:`undecided` is what history asks: given the systems read in an audit, could the rule that produces this
finding have produced it again? If not, the finding's absence means nothing (``unknown``, never ``resolved``).
A finding of a kind this table does not know needs every system.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from nexus.drift import fields as F
from nexus.systems import System

__all__ = ["OWNER_FALLBACK", "PEOPLE_FALLBACK", "RETURNS", "RULES", "Rule", "rule_for", "undecided"]

_PEOPLE = frozenset({System.WORKDAY, System.AD, System.ENTRA})
#: Resolving a device's owner, and so finding their Workday record, reads every person system and every owner
#: reference a device system holds (the first reference that resolves wins: nexus.drift.devices).
_OWNER = _PEOPLE | {System.HELIX, System.INTUNE, System.LANSWEEPER}
_ACCOUNT_HYGIENE = frozenset({F.ORPHANED_ACCOUNT, F.DORMANT_ACCOUNT})  # single-system: {system, Policy}
_PERSON_FIELDS = frozenset(F.PERSON_FIELDS) - _ACCOUNT_HYGIENE


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    fields: frozenset[str]
    pair: frozenset[str]  # display names of the two systems a finding names (the Policy pseudo-system included)
    requires: frozenset[System]
    inputs: frozenset[System] = frozenset()
    unless: frozenset[System] = frozenset()
    needs: str = ""  # what the inputs are for, said in a reason

    def runs(self, read: Collection[System]) -> bool:
        """The engine's gate: every required system was read and no system the rule stands in for was."""
        return self.requires <= set(read) and not (self.unless & set(read))

    def missing(self, read: Collection[System]) -> list[System]:
        """Required systems and inputs that were not read, in System order."""
        wanted = self.requires | self.inputs
        return [s for s in System if s in wanted and s not in read]


def _pair(*systems: System | str) -> frozenset[str]:
    return frozenset(s.display if isinstance(s, System) else s for s in systems)


_DEVICE_NEEDS = "the owner resolved across Workday, AD and Entra, their Workday status and the Helix register"

#: People rule 3: AD vs Entra, while Workday cannot be read.
PEOPLE_FALLBACK = Rule("people rule 3 (AD vs Entra while Workday is unavailable)",
                       frozenset({F.JOB_TITLE, F.DEPARTMENT, F.MANAGER, F.DISPLAY_NAME, F.ACCOUNT_ENABLED}),
                       _pair(System.AD, System.ENTRA), requires=frozenset({System.AD, System.ENTRA}),
                       unless=frozenset({System.WORKDAY}))
#: Device rule 1 without the register: Intune vs Lansweeper owner, while Helix cannot be read.
OWNER_FALLBACK = Rule("device rule 1 (Intune vs Lansweeper owner while Helix is unavailable)",
                      frozenset({F.DEVICE_OWNER}), _pair(System.INTUNE, System.LANSWEEPER),
                      requires=frozenset({System.INTUNE, System.LANSWEEPER}), inputs=_PEOPLE,
                      unless=frozenset({System.HELIX}), needs="the owners resolved across Workday, AD and Entra")
#: Device rule 4: a return ticket's FedEx shipment.
RETURNS = Rule("device rule 4 (return shipment)", frozenset({F.RETURN_SHIPMENT}), _pair(System.HELIX, System.FEDEX),
               requires=frozenset({System.HELIX, System.FEDEX}))

#: Every rule of nexus.drift.people and nexus.drift.devices.
RULES: tuple[Rule, ...] = (
    *(Rule(f"people rules 1-2 (Workday vs {other.display})", _PERSON_FIELDS, _pair(System.WORKDAY, other),
           requires=frozenset({System.WORKDAY, other})) for other in (System.AD, System.ENTRA)),
    PEOPLE_FALLBACK,
    # dormancy: AD's lastLogonTimestamp, Entra's signInActivity (unless ENTRA_SIGN_IN_ACTIVITY=false: not judged)
    *(Rule(f"account rules (orphaned, dormant {system.display} accounts)", _ACCOUNT_HYGIENE,
           _pair(system, F.POLICY), requires=frozenset({System.WORKDAY, system}))
      for system in (System.AD, System.ENTRA)),
    *(Rule(f"device rule 1 (Helix vs {other.display} owner)", frozenset({F.DEVICE_OWNER}),
           _pair(System.HELIX, other), requires=frozenset({System.HELIX, other}), inputs=_PEOPLE,
           needs="the owners resolved across Workday, AD and Entra") for other in (System.INTUNE, System.LANSWEEPER)),
    OWNER_FALLBACK,
    Rule("device rule 3 (device of a terminated owner still active)", frozenset({F.DEVICE_ACTIVE}),
         _pair(System.WORKDAY, System.INTUNE), requires=frozenset({System.WORKDAY, System.INTUNE}), inputs=_OWNER,
         needs=_DEVICE_NEEDS),
    Rule("device rule 2 (Intune health of a device in use)", frozenset({F.LAST_SYNC, F.COMPLIANCE}),
         _pair(System.INTUNE, F.POLICY), requires=frozenset({System.INTUNE}), inputs=_OWNER, needs=_DEVICE_NEEDS),
    RETURNS,
    Rule("device rule 5 (unmanaged: Lansweeper sees it, Intune does not manage it)", frozenset({F.UNMANAGED_DEVICE}),
         _pair(System.LANSWEEPER, System.INTUNE), requires=frozenset({System.LANSWEEPER, System.INTUNE})),
    *(Rule(f"device rule 6 (unregistered: {other.display} knows it, Helix does not)",
           frozenset({F.UNREGISTERED_DEVICE}), _pair(System.HELIX, other), requires=frozenset({System.HELIX, other}))
      for other in (System.INTUNE, System.LANSWEEPER)),
)

_BY_KIND: dict[tuple[str, frozenset[str]], Rule] = {(f, r.pair): r for r in RULES for f in r.fields}


def _display(name: Any) -> str:
    try:
        return System.parse(str(name)).display
    except ValueError:
        return str(name or "")


def rule_for(finding: Mapping[str, Any]) -> Rule | None:
    """The rule that produces a finding (by field and its two systems), None for a kind no rule produces."""
    pair = _pair(_display(finding.get("system_a")), _display(finding.get("system_b")))
    return _BY_KIND.get((str(finding.get("field") or ""), pair))


def undecided(finding: Mapping[str, Any], read: Collection[System] | None, *,
              where: str = "in this audit") -> str | None:
    """Why an audit that read ``read`` (None: every system) could not have re-checked ``finding``; None if it could.

    The reason names the systems and is one line, e.g. ``not re-checked: Workday, Helix not read in this audit
    (compliance needs the owner ... and the Helix register)``.
    """
    if read is None:
        return None
    rule = rule_for(finding)
    if rule is None:
        absent = [s.display for s in System if s not in read]
        return f"not re-checked: {', '.join(absent)} not read {where}" if absent else None
    missing = rule.missing(read)
    if missing:
        names = ", ".join(s.display for s in missing)
        involved = {s for s in System if s.display in rule.pair}
        why = "" if set(missing) <= involved or not rule.needs else f" ({finding.get('field')} needs {rule.needs})"
        return f"not re-checked: {names} not read {where}{why}"
    blocked = [s.display for s in System if s in rule.unless and s in read]
    if blocked:
        return (f"not re-checked: {' and '.join(sorted(rule.pair))} are compared only while "
                f"{', '.join(blocked)} cannot be read, and it was read {where}")
    return None
