"""A private Postfix instance on loopback for the end-to-end tests.

The instance has its own config, queue and data folders under one temporary
folder and never talks to another host: it listens on 127.0.0.1 only, does no
DNS, delivers ``example.test`` into Maildirs and routes the ums domains by
transport map to the gateway on 127.0.0.1. Every other destination is an
error. It needs root (the master process starts as root) and the postfix
package.
"""

from __future__ import annotations

import email
import mailbox
import os
import pwd
import shutil
import smtplib
import subprocess
import time
from email import policy

import attrs

MAILBOX_DOMAIN = "example.test"
COMMAND_TIMEOUT = 60
QUEUE_FOLDERS = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")

SERVICES = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 1  1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
proxywrite unix - - n -  1 proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def find_postfix() -> str | None:
    """Return the path of the postfix command, or None when it is missing."""
    return shutil.which("postfix") or next(
        (p for p in ("/usr/sbin/postfix", "/sbin/postfix") if os.access(p, os.X_OK)),
        None,
    )


def command_path(name: str) -> str:
    """Return the path of the Postfix tool NAME (postqueue, postconf, ...)."""
    found = shutil.which(name)
    return found or os.path.join(os.path.dirname(find_postfix() or "/usr/sbin/"), name)


@attrs.define
class PostfixInstance:
    """One private Postfix: its folders, its port and the mail it routes."""

    base: str
    port: int
    gateway_port: int
    gateway_domains: tuple[str, ...]
    mailboxes: tuple[str, ...]
    mail_uid: int = attrs.field(init=False, default=0)
    mail_gid: int = attrs.field(init=False, default=0)
    started: bool = attrs.field(init=False, default=False)

    @property
    def config_dir(self) -> str:
        return os.path.join(self.base, "etc")

    @property
    def queue_dir(self) -> str:
        return os.path.join(self.base, "queue")

    @property
    def mail_dir(self) -> str:
        return os.path.join(self.base, "mail")

    @property
    def log_path(self) -> str:
        return os.path.join(self.base, "postfix.log")

    def write_config(self) -> None:
        """Write main.cf, master.cf and the maps; create the Maildir base."""
        self._choose_mail_owner()
        for folder in (self.config_dir, self.queue_dir, self.mail_dir):
            os.makedirs(folder, exist_ok=True)
        os.chown(self.mail_dir, self.mail_uid, self.mail_gid)
        self._write("main.cf", render_main_cf(self))
        listen = f"127.0.0.1:{self.port}"
        self._write("master.cf", SERVICES.format(listen=listen))
        self._write("vmailbox", render_mailbox_map(self.mailboxes))
        self._write("transport", render_transport_map(self))

    def _choose_mail_owner(self) -> None:
        # virtual(8) refuses uids under virtual_minimum_uid (100), so not root
        if os.getuid() >= 100:
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()
            return
        nobody = pwd.getpwnam("nobody")
        self.mail_uid, self.mail_gid = nobody.pw_uid, nobody.pw_gid

    def _write(self, name: str, text: str) -> None:
        with open(os.path.join(self.config_dir, name), "w", encoding="ascii") as out:
            out.write(text)

    def run_tool(self, name: str, *args: str) -> subprocess.CompletedProcess:
        """Run the Postfix tool NAME with -c for this instance; return the result."""
        return subprocess.run(
            [command_path(name), "-c", self.config_dir, *args],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start the instance and wait until its SMTP port answers."""
        done = self.run_tool("postfix", "start")
        self.started = True
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed: {done.stdout}{done.stderr}")
        wait_for_banner("127.0.0.1", self.port, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the instance, forcing it when it does not stop within TIMEOUT."""
        if not self.started:
            return
        self.run_tool("postfix", "stop")
        deadline = time.monotonic() + timeout
        while self.master_running() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.master_running():
            self.run_tool("postfix", "abort")
        self.started = False

    def master_running(self) -> bool:
        """Return True while this instance's master process is alive."""
        return self.run_tool("postfix", "status").returncode == 0

    def queued_files(self) -> list[str]:
        """Return the queue files of mail still waiting in this instance."""
        found = []
        for folder in QUEUE_FOLDERS:
            root = os.path.join(self.queue_dir, folder)
            for path, _, names in os.walk(root):
                found.extend(os.path.join(path, name) for name in names)
        return found

    def read_log(self) -> str:
        """Return the instance's log, or '' when there is none yet."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""

    def maildir(self, address: str) -> str:
        """Return the Maildir folder of ADDRESS (a mailbox of this instance)."""
        return os.path.join(self.mail_dir, address.partition("@")[0])

    def messages(self, address: str) -> list[email.message.EmailMessage]:
        """Return the messages in the Maildir of ADDRESS, oldest first."""
        folder = self.maildir(address)
        if not os.path.isdir(os.path.join(folder, "new")):
            return []
        box = mailbox.Maildir(folder, factory=None, create=False)
        items = sorted(box.iteritems(), key=lambda item: item[1].get_date())
        return [
            email.message_from_bytes(message.as_bytes(), policy=policy.default)
            for _, message in items
        ]


def render_main_cf(instance: PostfixInstance) -> str:
    """Return main.cf for INSTANCE: loopback only, no DNS, nothing goes out."""
    settings = {
        **folder_settings(instance),
        **network_settings(instance),
        **delivery_settings(instance),
    }
    return "".join(f"{key} = {value}\n" for key, value in settings.items())


def folder_settings(instance: PostfixInstance) -> dict[str, str]:
    """Return the settings that keep the instance in its own folders."""
    return {
        "compatibility_level": "3.6",
        "config_directory": instance.config_dir,
        "queue_directory": instance.queue_dir,
        "data_directory": os.path.join(instance.base, "data"),
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        # Postfix 3.4+ logs to a file through the postlog service of master.cf
        "maillog_file": instance.log_path,
        "maillog_file_prefixes": instance.base,
        "myhostname": f"mail.{MAILBOX_DOMAIN}",
        "mydomain": MAILBOX_DOMAIN,
        "myorigin": MAILBOX_DOMAIN,
        "biff": "no",
    }


def network_settings(instance: PostfixInstance) -> dict[str, str]:
    """Return the settings that keep the instance on loopback, without DNS."""
    return {
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "relayhost": "",
        "relay_domains": " ".join(instance.gateway_domains),
        "smtp_dns_support_level": "disabled",
        "smtp_bind_address": "127.0.0.1",
        "smtp_tls_security_level": "none",
        "smtpd_tls_security_level": "none",
        "smtpd_peername_lookup": "no",
        # even loopback clients may only send to example.test and the ums domains
        "smtpd_relay_restrictions": "reject_unauth_destination",
        "smtpd_recipient_restrictions": "permit_mynetworks, reject",
    }


def delivery_settings(instance: PostfixInstance) -> dict[str, str]:
    """Return the settings that deliver into Maildirs or to the gateway only."""
    etc = instance.config_dir
    return {
        "mydestination": "",
        "alias_maps": "",
        "alias_database": "",
        "local_recipient_maps": "",
        "recipient_delimiter": "",
        "default_transport": "error:no outside delivery in tests",
        "relay_transport": "error:no outside delivery in tests",
        "transport_maps": f"texthash:{etc}/transport",
        "virtual_mailbox_domains": MAILBOX_DOMAIN,
        "virtual_mailbox_maps": f"texthash:{etc}/vmailbox",
        "virtual_mailbox_base": instance.mail_dir,
        "virtual_uid_maps": f"static:{instance.mail_uid}",
        "virtual_gid_maps": f"static:{instance.mail_gid}",
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
    }


def render_mailbox_map(addresses: tuple[str, ...]) -> str:
    """Return the virtual mailbox map: each address into its own Maildir."""
    return "".join(f"{a} {a.partition('@')[0]}/\n" for a in addresses)


def render_transport_map(instance: PostfixInstance) -> str:
    """Return the transport map: the ums domains go to the gateway on loopback."""
    nexthop = f"smtp:[127.0.0.1]:{instance.gateway_port}"
    return "".join(f"{domain} {nexthop}\n" for domain in instance.gateway_domains)


def wait_for_banner(host: str, port: int, timeout: float) -> None:
    """Wait until an SMTP server at HOST:PORT sends its 220 greeting."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with smtplib.SMTP(host, port, timeout=2) as client:
                client.noop()
            return
        except (OSError, smtplib.SMTPException) as exc:
            last_error = exc
        time.sleep(0.2)
    raise TimeoutError(f"no SMTP greeting on {host}:{port} in {timeout}s: {last_error}")
