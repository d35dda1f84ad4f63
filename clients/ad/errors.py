"""Every LDAP failure as one of :mod:`nexus.errors`' classes, in one place.

================================================  =================================
connection refused / reset / closed / timeout     TransientError
``busy`` (51)                                     ThrottledError (retry_after None)
``unavailable`` (52), ``timeLimitExceeded`` (3)   TransientError
``invalidCredentials`` (49) and other auth codes  AuthError
``noSuchObject`` (32) on a base-scope read        NotFoundError
any other result code                             BadRequestError
an answer ldap3 cannot decode                     MalformedResponseError
================================================  =================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ldap3.core.exceptions import (
    LDAPCertificateError,
    LDAPCommunicationError,
    LDAPException,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
)
from pyasn1.error import PyAsn1Error

from clients.ad.schema import SYSTEM
from nexus.errors import (
    AuthError,
    BadRequestError,
    MalformedResponseError,
    NexusClientError,
    NotFoundError,
    ThrottledError,
    TransientError,
)

# LDAP result codes (RFC 4511) that are not "our request is wrong".
_AUTH_CODES = {7, 8, 13, 48, 49, 50}  # authMethodNotSupported .. insufficientAccessRights
_BUSY = 51
_TRANSIENT_CODES = {3, 52}  # timeLimitExceeded, unavailable
_NO_SUCH_OBJECT = 32

#: What ldap3 raises (besides LDAPException) when an answer cannot be decoded: it has no error of its own for it.
DECODE_ERRORS: tuple[type[Exception], ...] = (
    PyAsn1Error, TypeError, ValueError, KeyError, IndexError, AttributeError, UnicodeDecodeError,
)
#: Everything an ldap3 call may raise for a reason outside Nexus: catch these, then :func:`map_exception`.
LDAP_FAILURES: tuple[type[Exception], ...] = (LDAPException, *DECODE_ERRORS, OSError)


def map_result(
    result: Mapping[str, Any], action: str, *, base_read: bool = False, hint: str = ""
) -> NexusClientError:
    """The error for a non-success LDAP result (``conn.result``); ``hint`` tells the operator what to change."""
    code = int(result.get("result", -1))
    name = result.get("description") or "error"
    detail = str(result.get("message") or "").strip()
    message = f"AD {action}: LDAP {name} ({code})" + (f": {detail}" if detail else "") + (f"; {hint}" if hint else "")
    if code in _AUTH_CODES:
        return AuthError(message, system=SYSTEM)
    if code == _BUSY:
        return ThrottledError(message, system=SYSTEM, status=None, retry_after=None)
    if code in _TRANSIENT_CODES:
        return TransientError(message, system=SYSTEM)
    if code == _NO_SUCH_OBJECT and base_read:
        return NotFoundError(message, system=SYSTEM)
    return BadRequestError(message, system=SYSTEM)


def map_exception(exc: BaseException, action: str) -> NexusClientError:
    """The error for an exception ldap3 raised (never carries the bind password: ldap3 messages do not)."""
    if isinstance(exc, NexusClientError):
        return exc
    if isinstance(exc, LDAPCertificateError | LDAPStartTLSError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        # Not transient: retrying will not make the certificate verify.
        return AuthError(
            f"AD {action}: TLS failed or the server's certificate was refused ({type(exc).__name__}: {exc}); check "
            "AD_CA_FILE (the CA that signed it) and that AD_LDAP_URL names a host the certificate is for",
            system=SYSTEM,
        )
    if isinstance(exc, LDAPCommunicationError | LDAPResponseTimeoutError | OSError):
        return TransientError(f"AD {action}: {type(exc).__name__}: {exc}", system=SYSTEM)
    if isinstance(exc, LDAPException):
        return BadRequestError(f"AD {action}: {type(exc).__name__}: {exc}", system=SYSTEM)
    return MalformedResponseError(f"AD {action}: undecodable LDAP answer ({type(exc).__name__})", system=SYSTEM)


def dropped(exc: BaseException) -> bool:
    """The connection was closed under us (reset, EOF): reopening may help. A timeout is not a dropped line."""
    return isinstance(exc, LDAPCommunicationError) and not isinstance(exc, TimeoutError)


__all__ = ["DECODE_ERRORS", "LDAP_FAILURES", "dropped", "map_exception", "map_result"]
