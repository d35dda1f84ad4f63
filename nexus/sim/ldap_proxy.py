"""A TCP proxy in front of slapd that applies the contract's ``ad`` faults to LDAP and logs every operation.

Only the client-to-server direction is parsed, and only as far as LDAP message framing (BER: ``SEQUENCE``, length,
``messageID``, ``protocolOp`` tag); binds and searches are walked a little further (a few BER tags, by hand:
pyasn1 cannot decode ldap3's recursive ``Filter`` spec once filters nest) to log the bind DN (never the password),
the search filter and the paged-results cookie. Responses stream back untouched, so paging 100k entries costs
no more than a socket copy. Per operation (never per connection, except ``down``), ``FaultBoard.decide("ad")``
picks what happens:

=================  ============================================================================================
``down``           new connections are closed at once (reset); an operation on an open one drops the connection
``slow``           the operation is held ``delay_ms`` before it reaches slapd (the response is that much later)
``flaky``          the failing operation drops the connection (the client sees a reset/EOF mid-call)
``throttle``       the operation is answered ``busy`` (51) with its messageID, never reaching slapd
``expired_token``  binds are answered ``invalidCredentials`` (49): LDAP's "your credential is no longer good"
``malformed``      the operation is answered with a framed message that is not LDAP (undecodable)
``truncated``      the first page of a paged search passes, later pages are answered ``unavailable`` (52)
=================  ============================================================================================

Unbind and abandon have no response, so they are logged but never faulted. The request log uses system ``ad`` and
paths ``bind``, ``search``, ``unbind``, ``modify``, ``add``, ``delete``, ``modify_dn``, ``compare``, ``abandon``,
``extended``; a search's query is its filter rendered as RFC 4515 text with every assertion value escaped, so tests
can prove what a hostile value became on the wire.

A synthesised response is written between two upstream responses; ldap3 and other synchronous clients wait for each
response before the next request, so it never interleaves with a half-written one. (A pipelining client could
see one split; acceptable for a simulator.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass

from nexus.sim.faults import FaultBoard, RequestLog

logger = logging.getLogger(__name__)

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"

# protocolOp tag of each request -> (log path, tag of its response or None when it has none)
_OPS: dict[int, tuple[str, int | None]] = {
    0x60: ("bind", 0x61),
    0x42: ("unbind", None),
    0x63: ("search", 0x65),  # answered by SearchResultDone
    0x66: ("modify", 0x67),
    0x68: ("add", 0x69),
    0x4A: ("delete", 0x6B),
    0x6C: ("modify_dn", 0x6D),
    0x6E: ("compare", 0x6F),
    0x50: ("abandon", None),
    0x77: ("extended", 0x78),
}

STRONGER_AUTH_REQUIRED = 8
STRONG_AUTH_TEXT = (
    "00002028: LdapErr: DSID-0C090259, comment: The server requires binds to turn on integrity checking if SSL\\TLS "
    "are not already active on the connection, data 0, v4563"
)
INVALID_CREDENTIALS = 49
BUSY = 51
UNAVAILABLE = 52

_READ_SIZE = 256 * 1024


# --- BER ---------------------------------------------------------------------------------------------------------


def _ber_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _ber_length(len(value)) + value


def _ber_int(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)


def ldap_result(message_id: int, response_tag: int, code: int, message: str = "") -> bytes:
    """An LDAPResult-shaped response (BindResponse, SearchResultDone, ...) for ``message_id``."""
    body = _tlv(0x0A, _ber_int(code)) + _tlv(0x04, b"") + _tlv(0x04, message.encode())
    return _tlv(0x30, _tlv(0x02, _ber_int(message_id)) + _tlv(response_tag, body))


def garbage(message_id: int) -> bytes:
    """Correctly framed, same messageID, but the protocolOp is an OCTET STRING: no LDAP client can decode it."""
    return _tlv(0x30, _tlv(0x02, _ber_int(message_id)) + _tlv(0x04, b"\xde\xad not ldap \xbe\xef"))


def frame_length(buf: bytes | bytearray) -> int | None:
    """Total length of the BER element at the start of ``buf``; None until enough bytes are there.

    Raises ValueError for what no LDAP peer sends (indefinite length, absurd sizes).
    """
    if len(buf) < 2:
        return None
    first = buf[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise ValueError("unsupported BER length")
    if len(buf) < 2 + count:
        return None
    return 2 + count + int.from_bytes(buf[2 : 2 + count], "big")


@dataclass(slots=True)
class Request:
    """One client LDAP message, as far as the proxy needs it."""

    message_id: int
    op_tag: int
    raw: bytes

    @property
    def path(self) -> str:
        return _OPS.get(self.op_tag, ("other", None))[0]

    @property
    def response_tag(self) -> int | None:
        return _OPS.get(self.op_tag, ("other", None))[1]


def parse_request(raw: bytes) -> Request:
    """messageID and protocolOp tag of one framed message (ValueError if it is not an LDAPMessage)."""
    if raw[0] != 0x30:
        raise ValueError("not an LDAP message")
    header = 2 + (raw[1] & 0x7F if raw[1] & 0x80 else 0)
    if raw[header] != 0x02:
        raise ValueError("no messageID")
    id_len = raw[header + 1]
    if id_len == 0 or id_len > 4:
        raise ValueError("bad messageID")
    start = header + 2
    message_id = int.from_bytes(raw[start : start + id_len], "big", signed=True)
    return Request(message_id=message_id, op_tag=raw[start + id_len], raw=raw)


# --- filters -----------------------------------------------------------------------------------------------------


def escape_value(value: bytes) -> str:
    """RFC 4515 rendering of an assertion value: ``*()\\``, NUL, controls and invalid UTF-8 as ``\\XX``."""
    out: list[str] = []
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"\\{b:02x}" if b < 0x20 or b >= 0x7F or b in b"*()\\" else chr(b) for b in value)
    for ch in text:
        if ch in "*()\\" or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("".join(f"\\{b:02x}" for b in ch.encode()))
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Element:
    """One BER element inside a buffer: its tag and where its value lies."""

    tag: int
    start: int  # first byte of the value
    end: int  # one past the last byte of the value


def element_at(data: bytes, pos: int, limit: int) -> Element:
    """The BER element at ``data[pos]``; ValueError if it overruns ``limit``."""
    if pos + 2 > limit:
        raise ValueError("truncated BER element")
    tag, first = data[pos], data[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported BER length")
        start, length = pos + 2 + count, int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
    if start + length > limit:
        raise ValueError("BER element overruns its container")
    return Element(tag, start, start + length)


def children(data: bytes, parent: Element) -> list[Element]:
    out = []
    pos = parent.start
    while pos < parent.end:
        element = element_at(data, pos, parent.end)
        out.append(element)
        pos = element.end
    return out


def _text(data: bytes, element: Element) -> str:
    return data[element.start : element.end].decode(errors="replace")


_AVA_OPS = {0xA3: "=", 0xA5: ">=", 0xA6: "<=", 0xA8: "~="}


def render_filter(data: bytes, flt: Element) -> str:
    """A BER-encoded RFC 4511 ``Filter`` as RFC 4515 text, every assertion value escaped.

    Hand-rolled (ten tags) because pyasn1 cannot decode ldap3's recursive ``Filter`` spec once filters nest.
    """
    tag = flt.tag
    if tag in (0xA0, 0xA1):  # and, or
        inner = "".join(render_filter(data, child) for child in children(data, flt))
        return f"({'&' if tag == 0xA0 else '|'}{inner})"
    if tag == 0xA2:  # not (explicit tag around one Filter)
        return f"(!{render_filter(data, element_at(data, flt.start, flt.end))})"
    if tag in _AVA_OPS:  # AttributeValueAssertion
        desc, value = children(data, flt)[:2]
        return f"({_text(data, desc)}{_AVA_OPS[tag]}{escape_value(data[value.start : value.end])})"
    if tag == 0x87:  # present
        return f"({_text(data, flt)}=*)"
    if tag == 0xA4:  # substrings: type, SEQUENCE OF initial [0] / any [1] / final [2]
        attr_el, subs = children(data, flt)[:2]
        initial, middle, final = "", "*", ""
        for sub in children(data, subs):
            text = escape_value(data[sub.start : sub.end])
            if sub.tag == 0x80:
                initial = text
            elif sub.tag == 0x81:
                middle += f"{text}*"
            else:
                final = text
        return f"({_text(data, attr_el)}={initial}{middle}{final})"
    if tag == 0xA9:  # extensibleMatch: [1] rule, [2] type, [3] value, [4] dnAttributes
        rule = attr = assertion = dn = ""
        for part in children(data, flt):
            if part.tag == 0x81:
                rule = ":" + _text(data, part)
            elif part.tag == 0x82:
                attr = _text(data, part)
            elif part.tag == 0x83:
                assertion = escape_value(data[part.start : part.end])
            elif part.tag == 0x84 and any(data[part.start : part.end]):
                dn = ":dn"
        return f"({attr}{dn}{rule}:={assertion})"
    return f"(?{tag:#04x})"


@dataclass(slots=True)
class Decoded:
    query: str = ""
    paged_cookie: bytes = b""


def decode_details(request: Request) -> Decoded:
    """The loggable detail of a bind (its DN, never the password) or a search (filter, paged-results cookie)."""
    if request.op_tag not in (0x60, 0x63):
        return Decoded()
    raw = request.raw
    try:
        parts = children(raw, element_at(raw, 0, len(raw)))  # messageID, protocolOp, [0] controls
        fields = children(raw, parts[1])
        if request.op_tag == 0x60:  # BindRequest: version, name, authentication
            return Decoded(query=_text(raw, fields[1]))
        # SearchRequest: base, scope, deref, sizeLimit, timeLimit, typesOnly, filter, attributes
        decoded = Decoded(query=render_filter(raw, fields[6]))
        if len(parts) > 2 and parts[2].tag == 0xA0:
            decoded.paged_cookie = _paged_cookie(raw, parts[2])
        return decoded
    except (ValueError, IndexError) as exc:
        return Decoded(query=f"<undecodable: {exc}>")


def _paged_cookie(raw: bytes, controls: Element) -> bytes:
    """Control ::= SEQUENCE { type, criticality?, value? }; the paged value ::= SEQUENCE { size, cookie }."""
    for control in children(raw, controls):
        parts = children(raw, control)
        if len(parts) < 2 or _text(raw, parts[0]) != PAGED_RESULTS_OID or parts[-1].tag != 0x04:
            continue
        value = parts[-1]
        size_and_cookie = children(raw, element_at(raw, value.start, value.end))
        cookie = size_and_cookie[1]
        return raw[cookie.start : cookie.end]
    return b""


START_TLS_OID = b"1.3.6.1.4.1.1466.20037"


def is_start_tls(request: Request) -> bool:
    """An ExtendedRequest for StartTLS (RFC 4511 4.14): after it the client speaks TLS, which the proxy passes on."""
    return request.op_tag == 0x77 and START_TLS_OID in request.raw


def bind_name(request: Request) -> str | None:
    """The name of a BindRequest (None for anything else, or one that does not decode)."""
    if request.op_tag != 0x60:
        return None
    raw = request.raw
    try:
        parts = children(raw, element_at(raw, 0, len(raw)))
        return _text(raw, children(raw, parts[1])[1])
    except (ValueError, IndexError):
        return None


def with_bind_name(request: Request, name: str) -> bytes:
    """The BindRequest with its name replaced (version, authentication and controls as they were)."""
    raw = request.raw
    top = element_at(raw, 0, len(raw))
    parts = children(raw, top)
    fields = children(raw, parts[1])
    body = raw[parts[1].start : fields[0].end] + _tlv(0x04, name.encode()) + raw[fields[1].end : parts[1].end]
    return _tlv(0x30, raw[top.start : parts[0].end] + _tlv(0x60, body) + raw[parts[1].end : top.end])


# --- the proxy ---------------------------------------------------------------------------------------------------


class LdapProxy:
    """Forwards 127.0.0.1:<port> to slapd, applying ``faults`` and recording into ``log`` (system ``system``).

    Runs its own asyncio loop in a daemon thread: ``start()`` returns the bound port, ``stop()`` closes everything.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        faults: FaultBoard,
        log: RequestLog,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        system: str = "ad",
        bind_names: dict[str, str] | None = None,
        require_tls_binds: bool = False,
    ) -> None:
        """``bind_names``: lower-cased ``user@realm`` and ``DOMAIN\\user`` -> DN. Real AD accepts all three as a
        simple bind's name (MS-ADTS 5.1.1.1.1, "Simple Authentication": a DN, a UPN, or ``NetBIOS\\sAMAccountName``);
        slapd takes DNs only, so the proxy rewrites the other two to the DN before slapd sees them (on plain
        connections: after StartTLS the proxy only relays bytes)."""
        self.bind_names = {k.lower(): v for k, v in (bind_names or {}).items()}
        #: Refuse simple binds on plain connections with strongerAuthRequired (8), in the words of a Windows DC
        #: that requires LDAP signing (after StartTLS the proxy relays bytes, so TLS binds reach slapd).
        self.require_tls_binds = require_tls_binds
        self.upstream = (upstream_host, upstream_port)
        self.faults = faults
        self.log = log
        self.host = host
        self.port = port
        self.system = system
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    def start(self) -> int:
        if self._thread is not None:
            return self.port
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # report bind errors to start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"ldap-proxy-{self.system}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        return self.port

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(timeout=5)
        self._thread = None
        self._loop = None
        self._server = None

    def __enter__(self) -> LdapProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # connection handling

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fault = self.faults.get(self.system)
        if fault is not None and fault.mode == "down":
            writer.transport.abort()  # RST: the client sees the connection reset at once
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        downstream = asyncio.create_task(self._pump(up_reader, writer))
        try:
            await self._requests(reader, writer, up_writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # stop(): end quietly (a cancelled stream handler makes asyncio log a spurious traceback)
        finally:
            downstream.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await downstream
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """slapd -> client, untouched. Ends (and closes the client side) when slapd closes."""
        try:
            while data := await src.read(_READ_SIZE):
                dst.write(data)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: asyncio.StreamWriter
    ) -> None:
        buf = bytearray()
        passthrough = False  # after a framing error: stop parsing, forward bytes as they come
        while data := await reader.read(_READ_SIZE):
            if passthrough:
                upstream.write(data)
                await upstream.drain()
                continue
            buf += data
            while buf:
                try:
                    length = frame_length(buf)
                except ValueError:
                    length = None
                    passthrough = True
                if passthrough:
                    upstream.write(bytes(buf))
                    buf.clear()
                    break
                if length is None or len(buf) < length:
                    break
                raw = bytes(buf[:length])
                del buf[:length]
                if not await self._operation(raw, writer, upstream):
                    return
                with contextlib.suppress(ValueError, IndexError):
                    if is_start_tls(parse_request(raw)):
                        passthrough = True  # TLS from here on: relay bytes (the client waits for the answer first)
                        if buf:
                            upstream.write(bytes(buf))
                            buf.clear()
                        break
            await upstream.drain()

    async def _operation(self, raw: bytes, writer: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> bool:
        """Apply the fault for one request; False when the connection must be dropped."""
        try:
            request = parse_request(raw)
        except (ValueError, IndexError):
            upstream.write(raw)  # let slapd answer protocol errors itself
            return True
        details = decode_details(request)
        self.log.record(self.system, request.path, details.query)
        if request.response_tag is None:  # unbind / abandon: nothing to fault
            upstream.write(raw)
            return True
        mode = self.faults.decide(self.system)
        if mode in ("down", "flaky"):
            return False
        if mode == "slow":
            fault = self.faults.get(self.system)
            await asyncio.sleep((fault.delay_ms if fault else 0) / 1000)
        elif mode == "throttle":
            fault = self.faults.get(self.system)
            retry = f"; retry after {fault.retry_after:g}s" if fault else ""
            writer.write(ldap_result(request.message_id, request.response_tag, BUSY, f"server busy{retry}"))
            return True
        elif mode == "expired_token" and request.path == "bind":
            writer.write(
                ldap_result(
                    request.message_id,
                    request.response_tag,
                    INVALID_CREDENTIALS,
                    "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 532, v4563",
                )
            )
            return True
        elif mode == "malformed":
            writer.write(garbage(request.message_id))
            return True
        elif mode == "truncated" and request.path == "search" and details.paged_cookie:
            writer.write(ldap_result(request.message_id, request.response_tag, UNAVAILABLE, "paging interrupted"))
            return True
        if self.require_tls_binds and request.path == "bind":
            refusal = ldap_result(request.message_id, request.response_tag, STRONGER_AUTH_REQUIRED, STRONG_AUTH_TEXT)
            writer.write(refusal)
            return True
        name = bind_name(request)
        if name is not None and (dn := self.bind_names.get(name.lower())) is not None:
            raw = with_bind_name(request, dn)
        upstream.write(raw)
        return True
