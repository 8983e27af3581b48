"""A tiny authoritative DNS server on 127.0.0.1 (UDP) for MX tests, built with dnspython.

``DNSServer({"remote.test": {"MX": ["10 mx1.remote.test."]}, "mx1.remote.test": {"A":
["127.0.0.2"]}})`` answers those records; a name in the table without the asked type gets an
empty NOERROR answer (RFC 2308 NODATA), any other name NXDOMAIN (RFC 1035 4.1.1 RCODE 3).
Every question is recorded in ``queries``.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Mapping, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

Zone = Mapping[str, Mapping[str, Sequence[str]]]


class _Handler(socketserver.BaseRequestHandler):
    server: DNSServer

    def handle(self) -> None:
        data, sock = self.request
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # not DNS: no answer, as a real server would drop it
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            with self.server.lock:
                self.server.queries.append((name, rdtype))
            records = self.server.zone.get(name)
            if records is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                continue
            texts = records.get(rdtype, ())
            if not texts:
                continue
            rrset = response.find_rrset(
                response.answer, question.name, dns.rdataclass.IN, question.rdtype, create=True
            )
            for text in texts:
                rrset.add(dns.rdata.from_text(dns.rdataclass.IN, question.rdtype, text), ttl=60)
        sock.sendto(response.to_wire(), self.client_address)


class DNSServer(socketserver.ThreadingUDPServer):
    daemon_threads = True

    def __init__(self, zone: Zone) -> None:
        self.zone = {name.lower().rstrip("."): dict(records) for name, records in zone.items()}
        self.queries: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, args=(0.1,), daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> DNSServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
