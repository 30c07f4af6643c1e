"""A loopback SMTP server for the mailer's tests: every accepted message is appended to a file as one
JSON line (envelope, Message-ID, decoded subject and bodies), flushed before the server answers 250, so what the file holds
is exactly what the server accepted.

Recipients whose local part starts with `bounce` are refused with 550 (permanent), with `busy` with 451
(transient), so tests can see how each class is handled; a message to one starting with `stall` is taken
in and never answered (a server stalling at DATA).

Usage: python3 smtp_sink.py PORT FILE   (prints READY once listening; stops on SIGTERM/SIGKILL)
"""

import asyncio
import email
import email.policy
import json
import os
import signal
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, path):
        self.path = path

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("bounce"):
            return "550 5.1.1 mailbox unavailable"
        if local.startswith("busy"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.split("@", 1)[0].lower().startswith("stall") for r in envelope.rcpt_tos):
            await asyncio.sleep(3600)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        line = json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "message_id": message.get("message-id", ""),
            "to": str(message.get("to", "")),
            "subject": str(message.get("subject", "")),
            "text": text.get_content() if text is not None else "",
            "html": html.get_content() if html is not None else "",
        }, ensure_ascii=False)
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
        return "250 Message accepted for delivery"


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(path), hostname="127.0.0.1", port=port, data_size_limit=10_000_000)
    controller.start()
    print("READY", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
