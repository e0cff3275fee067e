"""Where the local stack listens, from the settings `python -m local` reads (LOCAL_HOST, LOCAL_PORT,
LOCAL_MOTO_PORT, LOCAL_OPENSEARCH_PORT), and the environment a client of the running stack needs:
`make migrate` and `make backfill` run their command through this module, and the evaluations that
read the stack take their defaults from it, so a stack started on other ports is still the one
they reach.

    python -m local.endpoints                    print that environment (NAME=value lines)
    python -m local.endpoints COMMAND [ARG ...]  run COMMAND with it (over any AWS or OpenSearch
                                                 endpoint and credentials set: the local stack's)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT, DEFAULT_MOTO_PORT, DEFAULT_OPENSEARCH_PORT = 8000, 8001, 8002
ANY_ADDRESS = ("", "0.0.0.0", "::")  # listening on every interface: a client connects to loopback


@dataclass(frozen=True)
class Endpoints:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    moto_port: int = DEFAULT_MOTO_PORT
    opensearch_port: int = DEFAULT_OPENSEARCH_PORT

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Endpoints:
        env = os.environ if environ is None else environ
        return cls(
            host=env.get("LOCAL_HOST", DEFAULT_HOST),
            port=int(env.get("LOCAL_PORT", DEFAULT_PORT)),
            moto_port=int(env.get("LOCAL_MOTO_PORT", DEFAULT_MOTO_PORT)),
            opensearch_port=int(env.get("LOCAL_OPENSEARCH_PORT", DEFAULT_OPENSEARCH_PORT)),
        )

    def _url(self, port: int) -> str:
        host = DEFAULT_HOST if self.host in ANY_ADDRESS else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def api_url(self) -> str:
        return self._url(self.port)

    @property
    def moto_url(self) -> str:
        return self._url(self.moto_port)

    @property
    def opensearch_url(self) -> str:
        return self._url(self.opensearch_port)

    def client_environment(self) -> dict[str, str]:
        """What a process outside the stack needs to use its emulators (no real credentials)."""
        return {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": "us-east-1",
            "OPENSEARCH_URL": self.opensearch_url,
        }

    def apply_defaults(self, environ: MutableMapping[str, str] | None = None) -> None:
        """Point this process at the stack, leaving any of these settings already set as it is."""
        env = os.environ if environ is None else environ
        for name, value in self.client_environment().items():
            env.setdefault(name, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.endpoints", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (none: print the environment)")
    command = [arg for arg in parser.parse_args(argv).command]
    if command[:1] == ["--"]:
        command = command[1:]
    client = Endpoints.from_environment().client_environment()
    if not command:
        for name, value in client.items():
            print(f"{name}={value}")
        return 0
    os.execvpe(command[0], command, {**os.environ, **client})  # replaces this process


if __name__ == "__main__":
    sys.exit(main())
