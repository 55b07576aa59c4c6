"""TLS for the RESP listener and the HTTP port, with Redis's setting names.

The TLS port accepts plain TCP and runs the handshake itself with ``loop.start_tls``
(asyncio and uvloop), so a failed handshake (garbage bytes, a plain RESP client, an
expired or unknown client certificate) is logged with its peer and reason, and the
connection never becomes a client: it is not counted, not in CLIENT LIST, and nothing is
left open. Each handshake uses the context current at its start, so a reload (SIGHUP)
reaches new connections while established ones keep theirs.

The HTTP port, with ``tls-http yes``, serves HTTPS with the same certificate and key; a
client certificate there is verified when presented and never required (probes such as
the kubelet's cannot present one; Basic auth authenticates HTTP)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Protocol

log = logging.getLogger("clusterwatch.tls")

PROTOCOLS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
AUTH_CLIENTS = {"yes": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "no": ssl.CERT_NONE}
# Redis's default when tls-protocols is empty.
DEFAULT_PROTOCOLS = "TLSv1.2 TLSv1.3"


class TlsSettings(Protocol):
    """The settings TLS reads (``config.ServerConfig`` has them)."""

    @property
    def tls_port(self) -> int: ...

    @property
    def tls_cert_file(self) -> str: ...

    @property
    def tls_key_file(self) -> str: ...

    @property
    def tls_ca_cert_file(self) -> str: ...

    @property
    def tls_auth_clients(self) -> str: ...

    @property
    def tls_protocols(self) -> str: ...

    @property
    def tls_http(self) -> bool: ...


class TlsSettingError(ValueError):
    """A TLS setting is invalid; the message starts with the setting's Redis name."""


def check_settings(config: TlsSettings) -> None:
    """The checks that need no file contents; raise ``TlsSettingError``."""
    if not 0 <= config.tls_port <= 65535:
        raise TlsSettingError("tls-port must be between 0 and 65535")
    if config.tls_auth_clients not in AUTH_CLIENTS:
        raise TlsSettingError(f"tls-auth-clients: {config.tls_auth_clients!r} is not one of "
                              "yes, no, optional")
    protocol_range(config.tls_protocols)
    if not (config.tls_port or config.tls_http):
        return
    needed = "tls-port" if config.tls_port else "tls-http"
    for name, value in (("tls-cert-file", config.tls_cert_file),
                        ("tls-key-file", config.tls_key_file)):
        if not value:
            raise TlsSettingError(f"{name} must be set when {needed} is on")
    if config.tls_port and config.tls_auth_clients != "no" and not config.tls_ca_cert_file:
        raise TlsSettingError("tls-ca-cert-file must be set when tls-auth-clients is "
                              f"{config.tls_auth_clients} (or set tls-auth-clients no)")
    for name, value in (("tls-cert-file", config.tls_cert_file),
                        ("tls-key-file", config.tls_key_file),
                        ("tls-ca-cert-file", config.tls_ca_cert_file)):
        if value and not Path(value).is_file():
            raise TlsSettingError(f"{name}: {value} is not a readable file")


def protocol_range(text: str) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """``"TLSv1.2 TLSv1.3"`` -> (minimum, maximum); names as Redis spells them."""
    names = (text or DEFAULT_PROTOCOLS).split()
    unknown = [name for name in names if name not in PROTOCOLS]
    if unknown:
        raise TlsSettingError(f"tls-protocols: unknown protocol {unknown[0]!r} (use "
                              f"{', '.join(PROTOCOLS)})")
    versions = sorted(PROTOCOLS[name] for name in names)
    return versions[0], versions[-1]


def build_context(config: TlsSettings, *, http: bool = False) -> ssl.SSLContext:
    """A server context from the settings; raise ``TlsSettingError`` naming the file."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version, context.maximum_version = protocol_range(config.tls_protocols)
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSettingError(f"tls-cert-file/tls-key-file: cannot load {config.tls_cert_file} "
                              f"with {config.tls_key_file}: {exc}") from None
    mode = AUTH_CLIENTS[config.tls_auth_clients]
    if config.tls_ca_cert_file:
        try:
            context.load_verify_locations(cafile=config.tls_ca_cert_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsSettingError(f"tls-ca-cert-file: cannot load {config.tls_ca_cert_file}: "
                                  f"{exc}") from None
    if http:
        mode = ssl.CERT_OPTIONAL if config.tls_ca_cert_file else ssl.CERT_NONE
    context.verify_mode = mode
    return context


class TlsContexts:
    """The current server contexts, replaced whole on reload."""

    def __init__(self, config: TlsSettings) -> None:
        self._config = config
        self.resp: ssl.SSLContext | None = None
        self.http: ssl.SSLContext | None = None
        self.http_listener: ssl.SSLContext | None = None
        self.reloads = 0
        self.handshake_failures = 0
        if config.tls_port:
            self.resp = build_context(config)
        if config.tls_http:
            self.http = build_context(config, http=True)
            # aiohttp keeps the context it started with; its SNI callback, called for every
            # ClientHello, moves the handshake to the current one after a reload.
            self.http_listener = self.http
            self.http_listener.sni_callback = self._current_http

    def _current_http(self, sslobj: ssl.SSLObject, _name: str | None,
                      context: ssl.SSLContext) -> None:
        if self.http is not None and self.http is not context:
            sslobj.context = self.http

    def reload(self) -> None:
        """Read the certificate, key and CA files again; on any error keep the old ones."""
        resp = build_context(self._config) if self._config.tls_port else None
        http = build_context(self._config, http=True) if self._config.tls_http else None
        self.resp, self.http = resp, http
        self.reloads += 1
