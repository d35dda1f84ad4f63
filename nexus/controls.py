"""Which control each finding kind evidences, and the one-line remediation hint a report carries with it.

Controls are the CIS Critical Security Controls v8 safeguards an identity and asset audit evidences:

- CIS 1.1 Establish and maintain a detailed enterprise asset inventory (owner, status, last seen)
- CIS 1.2 Address unauthorized assets
- CIS 4.1 Establish and maintain a secure configuration process (compliance policies)
- CIS 5.1 Establish and maintain an inventory of accounts (reconciled to their owners)
- CIS 5.3 Disable dormant accounts (45 days without activity)
- CIS 6.2 Establish an access revoking process (on termination)
- CIS 6.8 Define and maintain role-based access control (title, department and manager drive access)

Every discrepancy names its kind in ``field``; :func:`control_of` and :func:`remediation_of` look it up. A kind this
table does not know gets neither (never a guessed control).
"""

from __future__ import annotations

#: The safeguards, by id, with CIS v8's title: reports print them.
CONTROL_TITLES: dict[str, str] = {
    "CIS 1.1": "Establish and Maintain Detailed Enterprise Asset Inventory",
    "CIS 1.2": "Address Unauthorized Assets",
    "CIS 4.1": "Establish and Maintain a Secure Configuration Process",
    "CIS 5.1": "Establish and Maintain an Inventory of Accounts",
    "CIS 5.3": "Disable Dormant Accounts",
    "CIS 6.2": "Establish an Access Revoking Process",
    "CIS 6.8": "Define and Maintain Role-Based Access Control",
}

#: kind (a discrepancy's ``field``) -> (control, remediation hint)
_KINDS: dict[str, tuple[str, str]] = {
    "job_title": ("CIS 6.8", "Correct the title in the directory from Workday (the system of record)."),
    "department": ("CIS 6.8", "Correct the department in the directory from Workday; review access that follows it."),
    "manager": ("CIS 6.8", "Correct the manager link in the directory from Workday."),
    "display_name": ("CIS 5.1", "Correct the display name in the directory from Workday."),
    "account_enabled": ("CIS 6.2", "Disable the account: its owner is terminated in Workday."),
    "account_exists": ("CIS 5.1", "Provision the missing account, or correct the correlation attributes."),
    "device_owner": ("CIS 1.1", "Correct the owner in the asset register (Helix) or in the system that differs."),
    "last_sync": ("CIS 1.1", "Locate the device; retire it in Intune and Helix if it is gone."),
    "compliance": ("CIS 4.1", "Bring the device back to policy, or restrict its access until it complies."),
    "device_active": ("CIS 6.2", "Retrieve and wipe the device: its owner has left and it still checks in."),
    "return_shipment": ("CIS 1.1", "Chase the return shipment with the carrier and the former owner."),
    "orphaned_account": ("CIS 5.1", "Find the account's owner; disable it if it has none."),
    "ambiguous_account": ("CIS 5.1", "Fix the correlation attributes so each account belongs to one worker."),
    "dormant_account": ("CIS 5.3", "Disable the account, or confirm with its owner that it is still needed."),
    "unmanaged_device": ("CIS 1.2", "Enrol the device in Intune, or remove it from the network."),
    "unregistered_device": ("CIS 1.1", "Register the device in the Helix asset register."),
}


def control_of(kind: str) -> str | None:
    entry = _KINDS.get(kind)
    return entry[0] if entry else None


def remediation_of(kind: str) -> str | None:
    entry = _KINDS.get(kind)
    return entry[1] if entry else None


def known_kinds() -> list[str]:
    return sorted(_KINDS)


__all__ = ["CONTROL_TITLES", "control_of", "known_kinds", "remediation_of"]
