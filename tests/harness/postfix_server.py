"""A private, real Postfix instance that relays only to 127.0.0.1 and logs to a file.

Debian's ``postfix`` runs with its own ``config_directory`` and log under the test's
temp dir, and its own ``queue_directory`` and ``data_directory`` in a private
directory made for it (``/tmp/mtarep-postfix-*``, removed at stop: the ``postfix``
user must reach them by absolute path, which it cannot below pytest's root-only temp
root). It never touches the system's instance (``/etc/postfix``,
``/var/spool/postfix``) and needs no ``postmulti``:

- ``maillog_file`` = ``<base>/mail.log`` through ``postlogd``: the postlog format,
  ``Mon DD HH:MM:SS host postfix/prog[pid]: ...`` (no syslog daemon involved);
- smtpd listens on a free port of 127.0.0.1 only, under the service name
  ``postfix/submission`` (its lines read ``postfix/submission/smtpd[pid]``);
- no DNS at all: every recipient domain goes through a ``texthash`` transport map
  to the next hops the test gives (an :class:`~tests.harness.smtp_responder.SmtpResponder`
  on 127.0.0.1), by the ``smtp`` transport, by ``softbounce`` (an ``smtp`` with
  ``soft_bounce = yes``: a would-be bounce is logged ``status=SOFTBOUNCE``) or by
  ``throttling`` (an ``smtp`` whose destinations start at concurrency 1, so one
  failed connection or greeting suspends the destination); anything
  else is refused at ``RCPT TO``; ``aliases`` (``virtual_alias_maps``) rewrite a
  recipient, so its delivery line carries ``orig_to=``;
- ``maximal_queue_lifetime = 0``: a message is tried once, then a deferral
  expires at once (qmgr logs ``status=expired, returned to sender``), so a test
  sees deferrals, expiry and the bounce to the sender within a second or two;
- ``minimal_backoff_time`` is long (60 s), so a destination that failed stays
  suspended while the test runs (``delivery temporarily suspended: ...``).

It runs as ``postfix -c DIR start-fg`` under a
:class:`~tests.harness.process.ManagedProcess` (root is required: Postfix's master
runs as root and its daemons switch to the ``postfix`` user). Stopping sends SIGTERM
to the command and the master, whose daemons go with it; anything still alive after
the bounded wait is killed, so nothing outlives the test.
"""

import os
import pwd
import shutil
import signal
import smtplib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path

from tests.harness.binaries import require_binary
from tests.harness.ports import HOST, free_port
from tests.harness.process import LoopbackServer, ManagedProcess, run_checked, tail
from tests.harness.wait import wait_until

MAIL_OWNER = "postfix"
HOSTNAME = "mta1.example.test"
"""``myhostname`` (the HELO name); postlog lines name the host by its first label, ``mta1``."""
START_TIMEOUT = 20.0

_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{host}:{port} inet n     -       n       -       -       smtpd
  -o syslog_name=postfix/submission
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
softbounce unix -       -       n       -       -       smtp
  -o soft_bounce=yes
throttling unix -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixServer(LoopbackServer):
    """A private Postfix under ``base_dir``: smtpd on ``port``, log in :attr:`log_path`.

    ``routes`` maps each recipient domain to its transport and next hops
    (``smtp:[127.0.0.1]:2525``, ``smtp:[127.0.0.1]:2525, [127.0.0.1]:2526`` — a list
    makes the first a non-final server —, ``softbounce:[127.0.0.1]:2527``,
    ``throttling:[127.0.0.1]:2528``).
    ``aliases`` maps a recipient address to the one mail is delivered to (its domain
    is accepted without a route). ``settings`` adds or overrides ``main.cf`` parameters.
    """

    def __init__(
        self,
        base_dir: Path,
        routes: Mapping[str, str],
        *,
        aliases: Mapping[str, str] | None = None,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("a private Postfix instance must be started as root")
        try:
            pwd.getpwnam(MAIL_OWNER)
        except KeyError:
            raise RuntimeError(f"no {MAIL_OWNER} user: apt-get install postfix") from None
        self._postfix = require_binary("postfix", "postfix")
        self._postconf = require_binary("postconf", "postfix")
        self.base_dir = base_dir
        self.config_dir = base_dir / "etc"
        self.runtime_dir: Path | None = None
        """Queue and data directories: made at start, removed at stop."""
        self.log_path = base_dir / "mail.log"
        self.routes = dict(routes)
        self.aliases = dict(aliases or {})
        self.settings = dict(settings or {})
        self._port = port if port is not None else free_port()
        self._process = ManagedProcess(
            "postfix",
            [self._postfix, "-c", str(self.config_dir), "start-fg"],
            base_dir / "postfix.stderr.log",
            extra_logs=[self.log_path],
            cwd=base_dir,
        )

    # Configuration ------------------------------------------------------------------

    @property
    def queue_dir(self) -> Path:
        return self._runtime() / "spool"

    @property
    def data_dir(self) -> Path:
        return self._runtime() / "data"

    def _runtime(self) -> Path:
        if self.runtime_dir is None:
            self.runtime_dir = Path(tempfile.mkdtemp(prefix="mtarep-postfix-"))
            os.chmod(self.runtime_dir, 0o755)
        return self.runtime_dir

    def main_cf(self) -> dict[str, str]:
        """Every ``main.cf`` parameter this instance sets."""
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "mail_owner": MAIL_OWNER,
            "myhostname": HOSTNAME,
            "mydomain": "example.test",
            "myorigin": "$mydomain",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "inet_interfaces": HOST,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": (
                f"check_recipient_access texthash:{self.config_dir}/routed, reject"
            ),
            "transport_maps": f"texthash:{self.config_dir}/transport",
            "virtual_alias_maps": f"texthash:{self.config_dir}/aliases",
            "relayhost": "",
            "default_transport": "error:no route in the test transport map",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "smtp_connect_timeout": "5s",
            "smtp_helo_timeout": "10s",
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(self.base_dir),
            "queue_run_delay": "1s",
            "minimal_backoff_time": "60s",
            "maximal_backoff_time": "60s",
            "maximal_queue_lifetime": "0",
            "bounce_queue_lifetime": "0",
            "delay_warning_time": "0",
            "smtp_connection_cache_on_demand": "no",
            "in_flow_delay": "0",
            # One failed connection or greeting makes a "throttling" destination dead
            # for minimal_backoff_time (the default, 5, needs five in a row).
            "throttling_initial_destination_concurrency": "1",
        }
        settings.update(self.settings)
        return settings

    def _write_config(self) -> None:
        for directory in (self.config_dir, self.queue_dir, self.data_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o755)
        owner = pwd.getpwnam(MAIL_OWNER)
        os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        os.chmod(self.data_dir, 0o700)
        main = "".join(f"{name} = {value}\n" for name, value in self.main_cf().items())
        (self.config_dir / "main.cf").write_text(main)
        (self.config_dir / "master.cf").write_text(_MASTER_CF.format(host=HOST, port=self._port))
        (self.config_dir / "transport").write_text(
            "".join(f"{domain} {route}\n" for domain, route in self.routes.items())
        )
        (self.config_dir / "aliases").write_text(
            "".join(f"{alias} {target}\n" for alias, target in self.aliases.items())
        )
        routed = dict.fromkeys([*self.routes, *(a.rpartition("@")[2] for a in self.aliases)])
        (self.config_dir / "routed").write_text("".join(f"{domain} OK\n" for domain in routed))

    # Life cycle --------------------------------------------------------------------------

    def reconfigure(self, settings: Mapping[str, str], timeout: float = START_TIMEOUT) -> None:
        """Change ``main.cf`` parameters and ``postfix reload``; wait until reloaded."""
        self.settings.update(settings)
        before = self.log_text().count("reload -- version")
        run_checked(
            [self._postconf, "-c", str(self.config_dir), "-e"]
            + [f"{name}={value}" for name, value in settings.items()],
            "postconf -e",
        )
        run_checked([self._postfix, "-c", str(self.config_dir), "reload"], "postfix reload")
        self.wait_for_log(
            lambda text: text.count("reload -- version") > before, "postfix reload", timeout
        )

    def _accepts_smtp(self) -> bool:
        with smtplib.SMTP(HOST, self._port, timeout=2) as client:
            code, _ = client.noop()
            return code == 250

    def start(self, timeout: float = START_TIMEOUT) -> None:
        try:
            self._write_config()
            self._launch(self._accepts_smtp, f"postfix smtpd on {HOST}:{self._port}", timeout)
        except BaseException:
            self._remove_runtime()
            raise

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop master and its daemons (SIGKILL after a bounded wait), remove the queue."""
        try:
            return super().stop(sig)
        finally:
            self._remove_runtime()

    def _remove_runtime(self) -> None:
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            self.runtime_dir = None

    # Use ----------------------------------------------------------------------------------

    def send(
        self,
        recipients: Sequence[str],
        *,
        sender: str = "sender@example.test",
        subject: str = "mtarep test",
    ) -> str:
        """Submit one message over SMTP; the queue id Postfix gave it."""
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message.set_content("A test message from the mtarep test suite.\n")
        with smtplib.SMTP(HOST, self._port, timeout=10) as client:
            client.ehlo("client.example.test")
            client.mail(sender)
            for recipient in recipients:
                code, reply = client.rcpt(recipient)
                if code != 250:
                    raise RuntimeError(f"postfix refused {recipient}: {code} {reply!r}")
            code, reply = client.data(message.as_bytes())
        if code != 250:
            raise RuntimeError(f"postfix refused the message: {code} {reply!r}")
        text = reply.decode("ascii", "replace")
        return text.rsplit(" ", 1)[-1]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(
        self, predicate: Callable[[str], bool], what: str, timeout: float = 20.0
    ) -> str:
        """Poll the log until ``predicate(text)``; the text then."""
        seen: list[str] = []

        def ready() -> bool:
            self._process.check_alive()
            text = self.log_text()
            seen[:] = [text]
            return predicate(text)

        wait_until(ready, timeout, what, log_tail=lambda: tail(self.log_path, 60))
        return seen[0]
