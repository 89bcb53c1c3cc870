"""CPU time of each codec per 20 ms frame, run by hand:

    .venv/bin/python -m bench.codec_cpu [--frames 1500] [--opus 0,2,5,10]

Speech made by bench/speech.py is encoded and decoded frame by frame through
`pidphone.audio.codec` (the objects the media session holds), each at its call rate (8 kHz
G.711, 16 kHz G.722 and Opus with the FEC a pidphone peer asks for), on thread CPU time so
that other load on the machine counts less. Printed: microseconds per frame to encode, to
decode, to conceal, and what one call costs (50 frames a second each way) in CPU seconds per
call-minute, the unit of bench/call.py.

`--opus` compares libopus encoder complexities instead: encode time per frame and PESQ-WB
(clean and at 3 % random loss, FEC rebuilding what it can) of the speech through each.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.speech import make_speech
from pidphone.audio.codec import audio_rate, make_codec

CODECS = ("PCMU", "G722", "opus")


def per_frame(name: str, frames: int) -> tuple[float, float, float]:
    """Seconds of CPU per frame to encode, decode and conceal."""
    rate = audio_rate(name)
    speech = make_speech(rate)
    codec = make_codec(name, {"useinbandfec": "1"}, sample_rate=rate)
    size = codec.frame_bytes
    pcm = [speech[i : i + size] for i in range(0, len(speech) - size + 1, size)]
    pcm = (pcm * (frames // len(pcm) + 1))[:frames]
    clock = time.thread_time
    start = clock()
    payloads = [codec.encode(frame) for frame in pcm]
    encoded = clock()
    for payload in payloads:
        codec.decode(payload)
    decoded = clock()
    for _ in range(frames // 10):
        codec.conceal()
    concealed = clock()
    codec.close()
    return (
        (encoded - start) / frames,
        (decoded - encoded) / frames,
        (concealed - decoded) / max(1, frames // 10),
    )


def opus_complexities(levels: list[int], frames: int) -> None:
    from bench.relay import Impairer, Impairment
    from bench.speech import mos, through_codec
    from pidphone.audio.codec import OpusCodec

    rate = audio_rate("opus")
    speech = make_speech(rate)
    impairer = Impairer(Impairment(loss=0.03), 1)
    lost = [impairer.schedule(0.0) == [] for _ in range(2000)]
    print(
        f"{'complexity':>10} {'encode us':>10} {'CPU-s/min':>10} {'MOS clean':>10} {'MOS 3 %':>8}"
    )
    for level in levels:
        codec = OpusCodec(sample_rate=rate, complexity=level)
        size = codec.frame_bytes
        pcm = [speech[i : i + size] for i in range(0, len(speech) - size + 1, size)]
        pcm = (pcm * (frames // len(pcm) + 1))[:frames]
        start = time.thread_time()
        for frame in pcm:
            codec.encode(frame)
        encode = (time.thread_time() - start) / frames
        codec.close()
        scores = []
        for loss in ([], lost):
            codec = OpusCodec(sample_rate=rate, complexity=level)
            scores.append(mos(speech, through_codec(codec, speech, loss), rate))
            codec.close()
        print(
            f"{level:>10} {encode * 1e6:>10.1f} {encode * 50 * 60:>10.3f} {scores[0]:>10.2f} "
            f"{scores[1]:>8.2f}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codec_cpu", description=__doc__)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--opus", help="libopus complexities to compare, e.g. 0,2,5,10")
    args = parser.parse_args(argv)
    if args.opus:
        opus_complexities([int(level) for level in args.opus.split(",")], args.frames)
        return 0
    print(f"{'codec':>6} {'encode us':>10} {'decode us':>10} {'conceal us':>11} {'CPU-s/min':>10}")
    for name in CODECS:
        enc, dec, con = per_frame(name, args.frames)
        per_minute = (enc + dec) * 50 * 60
        print(
            f"{name:>6} {enc * 1e6:>10.1f} {dec * 1e6:>10.1f} {con * 1e6:>11.1f} "
            f"{per_minute:>10.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
