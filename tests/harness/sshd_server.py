"""A real OpenSSH ``sshd`` on a free loopback port, with throwaway host and client keys."""

import getpass
import socket
from pathlib import Path

from tests.harness.binaries import require_binary
from tests.harness.ports import HOST, free_port
from tests.harness.process import LoopbackServer, ManagedProcess, run_checked
from tests.harness.wait import DEFAULT_TIMEOUT

PRIVSEP_DIR = Path("/run/sshd")


class SshServer(LoopbackServer):
    """``sshd -D -e`` accepting only the generated ed25519 client key for the current user.

    ``known_hosts_path`` pins the real host key as ``[127.0.0.1]:PORT``;
    ``wrong_known_hosts(path)`` writes one pinning a different key for the same host.
    """

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self._sshd = require_binary("sshd", "openssh-server")
        self._keygen = require_binary("ssh-keygen", "openssh-client")
        self.base_dir = base_dir
        self._port = port if port is not None else free_port()
        self._user = getpass.getuser()
        self.config_path = base_dir / "sshd_config"
        self.log_path = base_dir / "sshd.log"
        self._host_key = base_dir / "ssh_host_ed25519_key"
        self._client_key = base_dir / "id_ed25519"
        self._authorized_keys = base_dir / "authorized_keys"
        self._known_hosts = base_dir / "known_hosts"
        self._process = ManagedProcess(
            "sshd",
            [self._sshd, "-D", "-e", "-f", str(self.config_path)],
            self.log_path,
            cwd=base_dir,
        )
        self._prepared = False

    @property
    def user(self) -> str:
        return self._user

    @property
    def client_key_path(self) -> Path:
        return self._client_key

    @property
    def known_hosts_path(self) -> Path:
        return self._known_hosts

    @property
    def host_key_path(self) -> Path:
        return self._host_key

    @property
    def known_hosts_name(self) -> str:
        """How ssh and paramiko name this server in known_hosts (non-22 port form)."""
        return f"[{HOST}]:{self._port}"

    def _generate_key(self, path: Path, comment: str) -> str:
        """Create an ed25519 key pair at ``path``; return the public line ``type base64``."""
        for stale in (path, path.with_name(path.name + ".pub")):
            stale.unlink(missing_ok=True)
        run_checked(
            [self._keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            f"ssh-keygen {path.name}",
        )
        key_type, key_data = path.with_name(path.name + ".pub").read_text().split()[:2]
        return f"{key_type} {key_data}"

    def _config(self) -> str:
        lines = [
            f"Port {self._port}",
            f"ListenAddress {HOST}",
            f"HostKey {self._host_key}",
            f"PidFile {self.base_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self._authorized_keys}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self._user}",
            "LogLevel VERBOSE",
            "UseDNS no",
            "PrintMotd no",
            "X11Forwarding no",
            "Subsystem sftp internal-sftp",
        ]
        return "\n".join(lines) + "\n"

    def _prepare(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        host_public = self._generate_key(self._host_key, "mtarep-test-host")
        client_public = self._generate_key(self._client_key, "mtarep-test-client")
        self._authorized_keys.write_text(client_public + "\n")
        self._known_hosts.write_text(f"{self.known_hosts_name} {host_public}\n")
        self.config_path.write_text(self._config())
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        run_checked([self._sshd, "-t", "-f", str(self.config_path)], "sshd -t (config check)")
        self._prepared = True

    def wrong_known_hosts(self, path: Path) -> Path:
        """Write at ``path`` a known_hosts pinning a freshly generated, different key."""
        other_key = self.base_dir / "other_host_ed25519_key"
        public = self._generate_key(other_key, "mtarep-test-wrong-host")
        path.write_text(f"{self.known_hosts_name} {public}\n")
        return path

    def _banner(self) -> bool:
        with socket.create_connection((HOST, self._port), timeout=0.5) as sock:
            return sock.recv(64).startswith(b"SSH-2.0-")

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Generate keys and config (first time only), check it, start, wait for the banner."""
        if not self._prepared:
            self._prepare()
        self._launch(self._banner, f"sshd on {HOST}:{self._port}", timeout)
