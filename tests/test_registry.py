"""The registry is the one place that knows "each system": pin what follows from it.

Every system has a client playing the roles its id declares (clients/roles.py), a fetch task and (with a listing)
a snapshot task on its own queue, and the chords are built from it. A system added to the registry gets all of
this without another file changing, which is what these tests check for the systems we have.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from clients.roles import DeviceInventory, HealthCheck, PagedListing, PeopleDirectory, ReturnRegister, ShipmentTracker
from nexus.registry import CURSOR, DERIVED, OFFSET, SPECS, STREAM_KIND, STREAM_SYSTEM, STREAMS, listed_systems
from nexus.settings import Settings
from nexus.systems import DEVICE_INVENTORIES, HEALTH_SYSTEMS, USER_SYSTEMS, Role, System, systems_with
from workers.app import celery_app
from workers.routing import task_routes

ROLE_PROTOCOLS: dict[Role, type] = {Role.PEOPLE: PeopleDirectory, Role.DEVICES: DeviceInventory,
                                    Role.RETURNS: ReturnRegister, Role.SHIPMENTS: ShipmentTracker}


def _settings() -> Settings:
    return Settings(_env_file=None, USE_MOCK=False, AD_LDAP_URL="ldap://127.0.0.1:1", HELIX_USERNAME="svc")


def test_every_system_has_one_entry_in_report_order() -> None:
    assert list(SPECS) == list(System)
    assert all(spec.system is system for system, spec in SPECS.items())


@pytest.mark.parametrize("system", list(System), ids=str)
def test_each_client_plays_the_roles_its_system_declares(system: System) -> None:
    client = SPECS[system].build(_settings())
    with contextlib.closing(client):
        assert isinstance(client, HealthCheck)
        for role in system.roles:
            assert isinstance(client, ROLE_PROTOCOLS[role]), f"{system.display} lacks the {role} role"
        if any(stream.mode != DERIVED and stream.listing is None for stream in SPECS[system].streams):
            assert isinstance(client, PagedListing)
        for stream in SPECS[system].streams:
            method = stream.listing or (stream.fetch if stream.mode != DERIVED else None)
            if method is not None:
                assert callable(getattr(client, method)), f"{system.display} has no {method}()"


def test_role_groups_follow_from_the_registry() -> None:
    assert USER_SYSTEMS == (System.WORKDAY, System.AD, System.ENTRA)
    assert DEVICE_INVENTORIES == (System.INTUNE, System.LANSWEEPER, System.HELIX)
    assert systems_with(Role.SHIPMENTS) == (System.FEDEX,)
    assert set(HEALTH_SYSTEMS) == set(System) and HEALTH_SYSTEMS[:6] == (
        System.WORKDAY, System.AD, System.ENTRA, System.LANSWEEPER, System.INTUNE, System.HELIX)


def test_streams_are_named_once_with_their_kind_and_mode() -> None:
    names = [s.name for spec in SPECS.values() for s in spec.streams]
    assert len(names) == len(set(names))
    assert STREAMS[System.HELIX] == ("helix", "helix_tickets")
    assert STREAM_SYSTEM["helix_tickets"] is System.HELIX and STREAM_KIND["helix_tickets"] == "ticket"
    assert {s.mode for spec in SPECS.values() for s in spec.streams} <= {CURSOR, OFFSET, DERIVED}
    assert listed_systems() == tuple(System)  # every system is read by a fleet audit
    assert SPECS[System.FEDEX].after is System.HELIX


def test_every_system_has_its_tasks_on_its_own_queue() -> None:
    import tasks.fetch
    import tasks.fleet  # noqa: F401  (registers the snapshot tasks)

    routes = task_routes()
    for spec in SPECS.values():
        assert spec.fetch_task in celery_app.tasks
        assert routes[spec.fetch_task] == {"queue": spec.queue}
        if spec.streams:
            assert spec.snapshot_task in celery_app.tasks
            assert routes[spec.snapshot_task] == {"queue": spec.queue}


def _names(sig: Any) -> list[Any]:
    """A canvas as nested task names (chords as {"header": [...], "body": name}, chains as lists)."""
    from celery.canvas import _chain, chord

    if isinstance(sig, chord):
        return [{"header": [_names(s) for s in sig.tasks], "body": sig.body["task"]}]
    if isinstance(sig, _chain):
        return [[_names(s) for s in sig.tasks]]
    return sig["task"]


def test_the_fleet_chord_is_built_from_the_registry() -> None:
    from tasks.signatures import fleet_canvas

    (fleet,) = _names(fleet_canvas("a1", "fleet"))
    assert fleet["body"] == "nexus.compare.fleet"
    people, *others = fleet["header"]
    assert people == [{"header": [f"nexus.snapshot_{s.value}" for s in USER_SYSTEMS],
                       "body": "nexus.compare.fleet_people"}]
    assert others == ["nexus.snapshot_intune", "nexus.snapshot_lansweeper",
                      [["nexus.snapshot_helix", "nexus.snapshot_fedex"]]]
    (bulk,) = _names(fleet_canvas("a1", "bulk"))
    assert bulk == {"header": [f"nexus.snapshot_{s.value}" for s in USER_SYSTEMS], "body": "nexus.compare.fleet"}


def test_a_dependent_snapshot_receives_the_marker_of_the_one_it_follows() -> None:
    from tasks.signatures import fleet_canvas

    chain = fleet_canvas("a1", "fleet").tasks[-1]
    helix, fedex = chain.tasks
    assert helix.immutable and not fedex.immutable
    assert tuple(fedex.args) == ("a1",)
