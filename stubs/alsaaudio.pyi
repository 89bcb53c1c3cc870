# Typed surface of pyalsaaudio 0.11, only what pidphone uses.
from typing import Final, final

PCM_PLAYBACK: Final[int]
PCM_CAPTURE: Final[int]
PCM_NORMAL: Final[int]
PCM_NONBLOCK: Final[int]
PCM_FORMAT_S16_LE: Final[int]
PCM_STATE_RUNNING: Final[int]
PCM_STATE_XRUN: Final[int]
PCM_STATE_PREPARED: Final[int]

class ALSAAudioError(Exception): ...

@final
class PCM:
    def __init__(
        self,
        type: int = ...,
        mode: int = ...,
        device: str = "default",
        cardindex: int = -1,
        rate: int = 44100,
        channels: int = 2,
        format: int = ...,
        periodsize: int = 32,
        periods: int = 4,
    ) -> None: ...
    def close(self) -> None: ...
    def info(self) -> dict[str, object]: ...
    def state(self) -> int: ...
    def avail(self) -> int: ...
    def read(self) -> tuple[int, bytes]: ...
    def write(self, data: bytes) -> int: ...

@final
class Mixer:
    def __init__(
        self, control: str = "Master", id: int = 0, cardindex: int = -1, device: str = "default"
    ) -> None: ...
    def close(self) -> None: ...
    def getvolume(self, pcmtype: int = ..., units: int = ...) -> list[int]: ...
    def setvolume(
        self, volume: int, pcmtype: int = ..., units: int = ..., channel: int | None = None
    ) -> None: ...

def pcms(pcmtype: int = ...) -> list[str]: ...
