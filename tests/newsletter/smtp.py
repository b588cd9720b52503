"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, on a port the OS picks.

The handler records every accepted message (parsed with email.policy.default),
counts connections, and answers chosen addresses with a temporary (451) or
permanent (550) refusal, so tests see what a real mail server would do.
"""

from __future__ import annotations

import asyncio
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


class FreePortController(Controller):
    """aiosmtpd's Controller, bound to port 0: the real port is read back once the server listens."""

    def __init__(self, handler):
        super().__init__(handler, hostname="127.0.0.1", port=0)

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class RecordingHandler:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.connections = 0
        self.refuse_temporarily: dict[str, int] = {}  # address -> how many more times to answer 451
        self.refuse_permanently: set[str] = set()
        self.rcpt_attempts: dict[str, int] = {}
        self.stall_after: int | None = None  # after this many messages, the next DATA never gets an answer
        self.stalled = threading.Event()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpt_attempts[address] = self.rcpt_attempts.get(address, 0) + 1
            if address in self.refuse_permanently:
                return "550 5.1.1 No such user here"
            if self.refuse_temporarily.get(address, 0) > 0:
                self.refuse_temporarily[address] -= 1
                return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.stall_after is not None and len(self.messages) >= self.stall_after:
            self.stalled.set()  # the client now waits for an answer that never comes: a good moment to kill it
            await asyncio.sleep(3600)
            return "451 4.3.0 Stalled"
        with self.lock:
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.messages.append(message_from_bytes(envelope.original_content or envelope.content,
                                                    policy=policy.default))
        return "250 Message accepted"

    # --- what tests ask --------------------------------------------------

    def recipients(self) -> list[str]:
        with self.lock:
            return [rcpt for _, rcpts in self.envelopes for rcpt in rcpts]

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m, (_, rcpts) in zip(self.messages, self.envelopes) if address in rcpts]
