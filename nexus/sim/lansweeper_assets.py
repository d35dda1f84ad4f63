"""What the Lansweeper simulator serves: the assets' field paths, their EQUAL indexes, and asset filters.

Field paths (``assetBasicInfo.userName`` ...) are how a query names what to render and what to filter on. Filters
are the vendor's ``AssetsFilterGroupedInput``: ``{conjunction: AND|OR, conditions: [{operator, path, value}],
groups: [{conjunction, conditions}]}`` (groups nest one level), with the operators of ``AssetsFilterType`` (see
``lansweeper_schema.graphql``): EQUAL, NOT_EQUAL, LIKE (contains), EXISTS (``value`` "false" means absent, anything
else present), GREATER_THAN, GREATER_THAN_OR_EQUAL, SMALLER_THAN, SMALLER_THAN_OR_EQUAL (text order) and REGEXP
(a search). Text compares ignoring case. The vendor documents neither EXISTS's value nor case sensitivity: those
two are this simulator's choice, and Nexus sends only EQUAL.

Only the paths Lansweeper documents as filterable can be filtered on (:data:`FILTERABLE`, from
developer.lansweeper.com/docs/platform-api/guides/restrictions: ``assetBasicInfo.userDomain`` is not one), at most
:data:`MAX_CONDITIONS` conditions in all. EQUAL on ``assetCustom.serialNumber``, ``assetBasicInfo.userName`` and
``key`` is answered from indexes built once per org (:func:`candidates`), so a page costs O(page size) even with
150k assets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLError

from nexus.sim.org_model import LansweeperAsset, Org

_MAX_FILTER_DEPTH = 8


def _iso_ms(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _split_owner(user_name: str | None) -> tuple[str | None, str | None]:
    """``CORP\\sam`` -> (``CORP``, ``sam``); a bare name has no domain."""
    if not user_name:
        return None, None
    domain, sep, name = user_name.partition("\\")
    return (domain, name) if sep else (None, user_name)


Getter = Callable[[LansweeperAsset], Any]

#: Every field path the simulator can render or filter on.
FIELDS: dict[str, Getter] = {
    "key": lambda a: a.key,
    "assetBasicInfo.name": lambda a: a.name,
    "assetBasicInfo.type": lambda a: a.asset_type,
    "assetBasicInfo.userName": lambda a: _split_owner(a.user_name)[1],
    "assetBasicInfo.userDomain": lambda a: _split_owner(a.user_name)[0],
    "assetBasicInfo.lastSeen": lambda a: _iso_ms(a.last_seen),
    "assetBasicInfo.ipAddress": lambda a: a.ip_address or None,
    "assetCustom.serialNumber": lambda a: a.serial,
    "assetCustom.model": lambda a: a.model,
    "assetCustom.manufacturer": lambda a: a.manufacturer,
}
_INDEXED = ("key", "assetCustom.serialNumber", "assetBasicInfo.userName")

#: The paths Lansweeper documents as filterable ("The only available path values for filters are ...").
DOCUMENTED_FILTERABLE = frozenset({
    "key", "installKey", "assetBasicInfo.description", "assetBasicInfo.domain", "assetBasicInfo.firstSeen",
    "assetBasicInfo.ipAddress", "assetBasicInfo.lastSeen", "assetBasicInfo.mac", "assetBasicInfo.type",
    "assetBasicInfo.userName", "assetCustom.dnsName", "assetCustom.manufacturer", "assetCustom.model",
    "assetCustom.purchaseDate", "assetCustom.serialNumber", "assetCustom.stateName", "assetCustom.warrantyDate",
})
#: Of those, the ones this simulator has data for.
FILTERABLE = frozenset(DOCUMENTED_FILTERABLE & FIELDS.keys())
#: "There is a limit of 100 filters (conditions) that can be applied at the same time."
MAX_CONDITIONS = 100


def _fold(value: Any) -> str | None:
    return None if value is None else str(value).casefold()


class Assets:
    """One org's assets with the EQUAL indexes, built once."""

    def __init__(self, org: Org) -> None:
        self.items: list[LansweeperAsset] = org.lansweeper
        self.indexes: dict[str, dict[str, list[int]]] = {path: {} for path in _INDEXED}
        for pos, asset in enumerate(self.items):
            for path in _INDEXED:
                value = _fold(FIELDS[path](asset))
                if value:
                    self.indexes[path].setdefault(value, []).append(pos)


@dataclass(frozen=True, slots=True)
class Condition:
    operator: str
    path: str
    value: str | None


@dataclass(frozen=True, slots=True)
class Group:
    conjunction: str
    conditions: tuple[Condition, ...]
    groups: tuple[Group, ...]


def bad_input(message: str) -> GraphQLError:
    """A GraphQL error for a request the simulator refuses (``extensions.code`` ``BAD_USER_INPUT``)."""
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def parse_group(raw: dict[str, Any], depth: int = 0) -> Group:
    """The ``filters`` variable as a :class:`Group` (a path that is not filterable, an unusable REGEXP, too many
    conditions or deep nesting: bad input). The schema has already checked the shape and that values are given."""
    if depth > _MAX_FILTER_DEPTH:
        raise bad_input("Filter groups are nested too deeply.")
    conditions = []
    for cond in raw.get("conditions") or ():
        path = cond["path"]
        if path not in FILTERABLE:
            raise bad_input(f"Invalid filter path '{path}': it is not a filterable path.")
        if cond["operator"] == "REGEXP":
            try:
                re.compile(cond["value"])
            except re.error as exc:
                raise bad_input(f"Invalid regular expression for '{path}': {exc}.") from None
        conditions.append(Condition(cond["operator"], path, cond.get("value")))
    groups = tuple(parse_group(g, depth + 1) for g in raw.get("groups") or ())
    group = Group(raw.get("conjunction") or "AND", tuple(conditions), groups)
    if depth == 0 and _count(group) > MAX_CONDITIONS:
        raise bad_input(f"Too many filter conditions: at most {MAX_CONDITIONS} can be applied at the same time.")
    return group


def _count(group: Group) -> int:
    return len(group.conditions) + sum(_count(g) for g in group.groups)


def _test(cond: Condition, asset: LansweeperAsset) -> bool:
    have = _fold(FIELDS[cond.path](asset))
    want = _fold(cond.value)
    op = cond.operator
    if op == "EXISTS":
        return bool(have) != (want == "false")
    if op == "EQUAL":
        return have == want
    if op == "NOT_EQUAL":
        return have != want
    if have is None or want is None:
        return False
    if op == "LIKE":
        return want in have
    if op == "REGEXP":
        return re.search(cond.value or "", have, re.IGNORECASE) is not None
    if op == "GREATER_THAN":
        return have > want
    if op == "GREATER_THAN_OR_EQUAL":
        return have >= want
    if op == "SMALLER_THAN":
        return have < want
    return have <= want  # SMALLER_THAN_OR_EQUAL


def matches(group: Group, asset: LansweeperAsset) -> bool:
    """Does ``asset`` satisfy ``group`` (an empty group matches everything)?"""
    results = [_test(c, asset) for c in group.conditions] + [matches(g, asset) for g in group.groups]
    if not results:
        return True
    return all(results) if group.conjunction == "AND" else any(results)


def candidates(group: Group, assets: Assets) -> set[int] | None:
    """Positions that may match, from the indexes; None when a scan is needed."""
    sets: list[set[int] | None] = []
    for cond in group.conditions:
        if cond.operator == "EQUAL" and cond.path in assets.indexes:
            sets.append(set(assets.indexes[cond.path].get(_fold(cond.value) or "", ())))
        else:
            sets.append(None)
    sets += [candidates(g, assets) for g in group.groups]
    if not sets:
        return None
    if group.conjunction == "AND":
        known = [s for s in sets if s is not None]
        return set.intersection(*known) if known else None
    if any(s is None for s in sets):
        return None
    return set().union(*(s for s in sets if s is not None))


__all__ = ["DOCUMENTED_FILTERABLE", "FIELDS", "FILTERABLE", "MAX_CONDITIONS", "Assets", "Condition", "Getter", "Group",
           "bad_input", "candidates", "matches", "parse_group"]
