"""The composition root: the one place that turns a `Config` into settings and drivers, and the
one place that chooses real or simulated hardware (`config.hardware`).

- settings: what each part of the app needs from the config (`controller_settings`,
  `phone_settings`, `zrtp_config`, the SIP agent);
- drivers: TLS, the ZID cache file, audio (ALSA or simulated), the display (OLED or
  simulated), the keypad (GPIO, or a script or the terminal);
- phones: `build_controller` (the daemon's phone, with its keypad and display),
  `headless_controller` (`pidphone call` and `answer`: no keypad, no screen),
  `loopback_phone` (the demo's simulated phones on 127.0.0.1), and `show_config_error`, the
  display that tells why the daemon will not start.

Above it, the daemon runs the service life cycle and the commands report; below it, nothing
reads `config.hardware` or builds a device.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pidphone.app.call import CallSettings
from pidphone.app.controller import Controller, ControllerSettings
from pidphone.app.media import MediaConfig
from pidphone.app.phone_events import PhoneSettings
from pidphone.app.screen import PAGE_SECONDS, config_error_pages
from pidphone.app.switchboard import SwitchboardSettings
from pidphone.config import Config, load_display_config
from pidphone.config.contacts import load_contacts
from pidphone.drivers.call_log import FileCallLog
from pidphone.drivers.certs import parse_fingerprint
from pidphone.drivers.preferences import FilePreferences
from pidphone.drivers.sim_audio import SimAudioDevices
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.udp import local_address_towards, open_udp
from pidphone.drivers.zid_cache import FileZidCache
from pidphone.errors import ConfigError
from pidphone.ports import AudioDevices, Contact, Display, Keypad
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.sip.callers import CallerPolicy
from pidphone.sip.uri import Uri
from pidphone.zrtp.cache import MemoryZidCache, ZidCache
from pidphone.zrtp.config import ZrtpConfig

if TYPE_CHECKING:
    import dns.asyncresolver
    from luma.core.device import device as LumaDevice  # noqa: N812

log = logging.getLogger("pidphone.wiring")

DIRECT_AOR = "sips:pidphone@127.0.0.1"
"""Who we say we are when no account is configured (direct calls only)."""


# --------------------------------------------------------------------------- settings


def zrtp_config(config: Config) -> ZrtpConfig:
    security = config.security
    return ZrtpConfig(
        hashes=security.hash,
        ciphers=security.cipher,
        auth_tags=security.auth_tag,
        key_agreements=(*security.key_agreement, "Mult")[:7],
        sas_types=security.sas,
        hello_extension=security.hello_timeout,
        mtu=security.zrtp_mtu,
    )


def controller_settings(config: Config) -> ControllerSettings:
    """Media on every interface; the SDP names the address that routes towards the peer
    (or the STUN answer). No phone UI: `phone_settings` adds it."""
    media = MediaConfig(
        policy=config.security.zrtp_policy,
        zrtp=zrtp_config(config),
        secure_timeout=config.security.hello_timeout + 10.0,
    )
    return ControllerSettings(
        calls=SwitchboardSettings(
            call=CallSettings(media=media, codecs=config.audio.codecs),
            media_bind="0.0.0.0",
            stun_server=config.server.stun_address,
            dial_domain=config.phone.dial_domain,
            voicemail_indicator=config.phone.voicemail_indicator and bool(config.account.aor),
            voicemail_uri=config.phone.voicemail_uri,
        ),
        tone_plan=config.audio.tone_plan,
        secure_tone=config.audio.secure_tone,
    )


def phone_settings(config: Config, notice: str = "") -> PhoneSettings:
    """The phone UI's settings; `notice` goes on the idle screen."""
    return PhoneSettings(
        account=config.account.display_name or config.account.auth_user,
        registers=bool(config.account.aor),
        speed_dials=config.phone.speed_dials,
        history_size=config.phone.history_size,
        forward_always=config.phone.forward_always,
        forward_busy=config.phone.forward_busy,
        forward_no_answer=config.phone.forward_no_answer,
        forward_after=config.phone.forward_after,
        recall_after=config.phone.recall_after,
        contacts=phone_book(config),
        voicemail_number=config.phone.voicemail_number,
        inter_digit_timeout=config.phone.inter_digit_timeout,
        dim_after=config.display.dim_after or float("inf"),
        blank_after=config.display.blank_after or float("inf"),
        volume=config.audio.volume,
        ring_volume=config.audio.ring_volume,
        notice=notice,
    )


def user_agent(config: Config) -> UserAgent:
    account = config.account
    return UserAgent(
        AgentConfig(
            aor=account.aor or DIRECT_AOR,
            display_name=account.display_name,
            auth_user=account.auth_user or None,
            password=account.password or None,
            auth_realms=account.auth_realms,
            callers=caller_policy(config) if config.server.listen else None,
            registrar=config.server.outbound_address if account.aor else None,
            register_expires=config.server.register_expires,
            keepalive_interval=config.server.keepalive_interval,
        )
    )


def caller_policy(config: Config) -> CallerPolicy:
    """Who may call the listener: server.listen_allow's fingerprints and identities, or
    anyone (server.listen_anyone)."""
    server = config.server
    identities = tuple(Uri.parse(e) for e in server.listen_allow if e.startswith("sip"))
    fingerprints = frozenset(
        parse_fingerprint(e) for e in server.listen_allow if not e.startswith("sip")
    )
    return CallerPolicy(
        anyone=server.listen_anyone, fingerprints=fingerprints, identities=identities
    )


# --------------------------------------------------------------------------- drivers


def tls_transport(
    config: Config, *, dns_resolver: dns.asyncresolver.Resolver | None = None
) -> TlsTransport:
    """The SIP transport: TLS to the servers, and a listener for direct calls when configured.
    A registrar or proxy named by a domain alone is located by NAPTR/SRV (RFC 3263), asked
    through `dns_resolver` (default: the system's)."""
    server = config.server
    client = TlsClientConfig(
        ca_file=server.ca_file or None,
        pinned_sha256=server.pinned_fingerprint or None,
        client_cert=server.client_cert or None,
        client_key=server.client_key or None,
    )
    listener = None
    listen = server.listen_address
    if listen is not None:
        if not (server.client_cert and server.client_key):
            raise ConfigError(
                "server.listen", "a TLS listener needs server.client_cert and client_key"
            )
        listener = TlsServerConfig(
            cert_file=server.client_cert,
            key_file=server.client_key,
            host=listen[0],
            port=listen[1],
            ca_file=server.listen_ca_file or None,
            callers=caller_policy(config),
        )
    domain = server.discovery_domain if config.account.aor else None
    if domain is None:
        return TlsTransport(client, listener)
    from pidphone.drivers.dns import SipsLocator  # dnspython only when it is needed

    return TlsTransport(
        client, listener, resolver=SipsLocator(resolver=dns_resolver, discover=[domain])
    )


def zid_cache(config: Config) -> ZidCache:
    """The ZID cache file; if it cannot be opened, a cache in memory (and the reason logged):
    calls still work and are secured, only the retained secrets do not outlive the process."""
    try:
        cache = FileZidCache(Path(config.security.zid_cache))
    except OSError as exc:
        log.error(
            "security.zid_cache: cannot use %s (%s); secrets kept in memory only",
            config.security.zid_cache,
            exc,
        )
        return MemoryZidCache()
    if cache.recovered_from is not None:
        log.warning("the ZID cache was corrupt and was moved aside to %s", cache.recovered_from)
    return cache


def audio_devices(config: Config) -> AudioDevices:
    """The simulated devices (whose earpiece can be analysed), or the real ALSA ones."""
    if config.hardware == "simulated":
        sim = config.sim
        return SimAudioDevices(
            in_file=Path(sim.audio_in_file) if sim.audio_in_file else None,
            tone_frequency=sim.tone_frequency,
            out_file=Path(sim.audio_out_file) if sim.audio_out_file else None,
            file_rate=sim.file_rate,
        )
    from pidphone.drivers.alsa_audio import AlsaAudio

    return AlsaAudio(config.audio)


def display(config: Config, *, keep_image: bool = False) -> Display | None:
    """The display `config` names; `keep_image` leaves the last screen lit when it is closed
    (the error shown as the daemon exits)."""
    if config.hardware == "simulated":
        from pidphone.drivers.sim_display import SimDisplay

        png_dir = Path(config.sim.screens_dir) if config.sim.screens_dir else None
        return SimDisplay(png_dir=png_dir) if config.display.driver != "none" else None
    d = config.display
    if d.driver == "none":
        return None
    from pidphone.drivers.oled import GpioLines, OledConfig, OledDisplay, open_luma

    oled = OledConfig(
        driver=d.driver,
        bus=d.bus,
        i2c_port=d.i2c_port,
        i2c_address=d.i2c_address,
        spi_port=d.spi_port,
        spi_device=d.spi_device,
        spi_dc_pin=d.spi_dc_pin,
        spi_reset_pin=d.spi_reset_pin,
        rotation=d.rotation,
        contrast=d.contrast,
    )
    if not keep_image:
        return OledDisplay.from_config(oled)
    lines = GpioLines() if oled.bus == "spi" else None

    def open_persistent() -> LumaDevice:
        device = open_luma(oled, lines)
        device.persist = True  # luma's cleanup would blank the panel
        return device

    return OledDisplay(
        open_persistent,
        contrast=oled.contrast,
        on_close=lines.cleanup if lines is not None else None,
    )


def keypad(config: Config, *, play_script: bool = True) -> Keypad | None:
    """The GPIO keypad (reopened until it works), or the simulated one: a script of key
    events (played once: not again after a reload), else the terminal's keys when there is
    one."""
    if config.hardware == "simulated":
        from pidphone.drivers.sim_keypad import ScriptKeypad, TerminalKeypad

        if config.sim.keys_script and play_script:
            return ScriptKeypad.from_file(Path(config.sim.keys_script))
        if config.sim.keys_script:
            log.info("sim.keys_script %s was played already: not again", config.sim.keys_script)
        return TerminalKeypad() if sys.stdin.isatty() else None
    from pidphone.drivers.keypad import KeypadTiming, MatrixKeypad, RetryingKeypad

    k = config.keypad

    def open_keypad() -> MatrixKeypad:
        return MatrixKeypad(
            k.rows,
            k.cols,
            [list(row) for row in k.keymap],
            hook_pin=k.hook_pin,
            hook_closed_when=k.hook_closed_when,
            buttons=k.function_keys,
            timing=KeypadTiming(debounce=k.debounce_ms / 1000),
        )

    return RetryingKeypad(open_keypad)


# --------------------------------------------------------------------------- phones


def build_controller(config: Config, notice: str = "", *, play_script: bool = True) -> Controller:
    """The phone with the devices `config.hardware` names; `notice` goes on the idle screen;
    `play_script` False leaves out a `sim.keys_script` already played (a reload)."""
    cache = zid_cache(config)
    recovered = getattr(cache, "recovered_from", None)
    if recovered is not None and not notice:  # said on the screen as well as in the journal
        notice = f"ZID cache was corrupt: kept as {recovered.name}; compare the SAS again"
    settings = dataclasses.replace(
        controller_settings(config), phone=phone_settings(config, notice)
    )
    return Controller(
        settings,
        user_agent(config),
        tls_transport(config),
        cache,
        open_udp,
        local_address=local_address_towards,
        audio=audio_devices(config),
        display=display(config),
        keypad=keypad(config, play_script=play_script),
        call_log=call_log(config),
        preferences=FilePreferences(config.preferences_path),
    )


def phone_book(config: Config) -> tuple[Contact, ...]:
    """The contacts of phone.contacts_file; a file that is not a phone book is logged (and
    `pidphone contacts check` says what is wrong), and the phone runs without one."""
    if not config.phone.contacts_file:
        return ()
    try:
        return load_contacts(config.phone.contacts_file)
    except ConfigError as exc:
        log.error("phone.contacts_file: %s; running without a phone book", exc)
        return ()


def call_log(config: Config) -> FileCallLog:
    """The call history's file: phone.history_file, or beside the ZID cache."""
    return FileCallLog(config.history_path, max_records=config.phone.history_size)


def headless_controller(config: Config, audio: AudioDevices) -> Controller:
    """A phone without keypad, screen or ringer, on `audio` (from `audio_devices`): what
    `pidphone call` and `answer` run."""
    return Controller(
        controller_settings(config),
        user_agent(config),
        tls_transport(config),
        zid_cache(config),
        open_udp,
        local_address=local_address_towards,
        audio=audio,
    )


@dataclasses.dataclass(frozen=True)
class LoopbackPhone:
    """A simulated phone on 127.0.0.1 and the devices a demo looks into."""

    controller: Controller
    audio: SimAudioDevices
    transport: TlsTransport


def loopback_phone(
    name: str,
    *,
    tone: float,
    client: TlsClientConfig,
    listener: TlsServerConfig | None,
    speed_dials: Mapping[str, str],
) -> LoopbackPhone:
    """A phone named `name` with simulated devices (its microphone sends `tone` Hz), media
    on 127.0.0.1, ZRTP required, and secrets kept in memory; it takes direct calls when
    `listener` is given."""
    from pidphone.drivers.sim_display import ScreenLog

    audio = SimAudioDevices(tone_frequency=tone)
    agent = UserAgent(
        AgentConfig(
            aor=f"sips:{name.lower()}@127.0.0.1",
            display_name=name,
            keepalive_interval=0,
            callers=None if listener is None else listener.callers,
        )
    )
    transport = TlsTransport(client, listener)
    settings = ControllerSettings(
        calls=SwitchboardSettings(
            call=CallSettings(
                media=MediaConfig(policy="require", zrtp=zrtp_config(Config())),
                media_host="127.0.0.1",
            ),
            media_bind="127.0.0.1",
        ),
        phone=PhoneSettings(account=name, speed_dials=speed_dials),
    )
    controller = Controller(
        settings, agent, transport, MemoryZidCache(), open_udp, audio=audio, display=ScreenLog()
    )
    return LoopbackPhone(controller, audio, transport)


# --------------------------------------------------------------------------- config errors


def show_config_error(
    message: str, sources: Sequence[Path] = (), *, page_seconds: float = PAGE_SECONDS
) -> None:
    """Put a configuration error on the display before the daemon exits 78 (issue 7: "the
    error goes to the journal and to the OLED").

    With no valid config to open the display by, `hardware`, `[display]` and `[sim]` are
    taken from the first of `sources` (the boot-partition file, the installed config) where
    each is valid on its own, else from the defaults. A display that cannot be opened is only
    logged: the journal still has the error.

    A message longer than one screen is shown page by page, `page_seconds` each, once; the
    first page (the key) then stays while the phone is down."""
    config = load_display_config(sources)
    pages = config_error_pages(message)
    try:
        shown = display(config, keep_image=True)
        if shown is not None:
            if len(pages) > 1:
                for page in pages:
                    shown.show(page)
                    time.sleep(page_seconds)
            shown.show(pages[0])
            shown.close()
    except Exception as exc:  # best effort: no display must hide the configuration error
        log.warning("the configuration error could not be shown on the display: %s", exc)
