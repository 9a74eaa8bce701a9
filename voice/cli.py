"""Command line: argument parsing, logging set-up, and running the assistant.

Exit codes:
    0  done (input consumed and replies finished, or stopped by Ctrl-C / SIGTERM)
    1  unexpected internal error (a traceback is logged)
    2  bad command line
    3  bad configuration (malformed TOML, unknown key, wrong type)
    4  a model is missing or cannot be loaded
    5  the input file cannot be read
    6  no usable audio device (or an output file cannot be written), or the push-to-talk
       key cannot be watched here and there is no window (or --gui without a display)
    7  the memory database cannot be opened or deleted (--forget starts afresh;
       [memory] enabled = false runs without it)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from .capture import AudioInputError, FileSource, MicrophoneSource
from .config import ConfigError, load_config, url_problem
from .echo import EchoCanceller
from .console import ConsolePrinter
from .frontend import Frontend, HotkeyUnavailable, add_arguments, apply_arguments, check_arguments
from .memory import MemoryStore, MemoryStoreError, forget, memory_path
from .metrics import TurnMetrics
from .models import ModelError
from .playback import AudioOutputError, SpeakerSink, WavSink

log = logging.getLogger("voice")

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_CONFIG, EXIT_MODEL, EXIT_INPUT, EXIT_DEVICE = range(7)
EXIT_MEMORY = 7


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="voice-assistant", description="A local, private, real-time voice assistant.",
                                 epilog="Exit codes: 0 ok, 1 internal error, 2 usage, 3 config, 4 model, "
                                        "5 input file, 6 audio device, 7 memory database.")
    ap.add_argument("--input", metavar="FILE", help="replay an audio file (WAV/FLAC, any rate) instead of the microphone")
    ap.add_argument("--output", metavar="FILE.wav", help="write what would be played to a WAV file instead of the speaker")
    ap.add_argument("--fast", action="store_true", help="with --input: as fast as possible, not at real-time pace")
    ap.add_argument("--config", metavar="FILE.toml", help="settings merged over config/default.toml")
    ap.add_argument("--metrics", metavar="FILE.jsonl", help="append one JSON object of timings per turn")
    ap.add_argument("--llm-url", metavar="URL", help="answer with an OpenAI-compatible server at this API base "
                                                     "for this run, e.g. http://127.0.0.1:8080/v1")
    ap.add_argument("--llm-model", metavar="NAME", help="the model to ask that server for "
                                                        "(default: llm.api_model, else the first it lists)")
    ap.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    ap.add_argument("--forget", action="store_true", help="delete the stored conversation (memory) and exit")
    ap.add_argument("--check-models", action="store_true", help="load the models once and exit (scripts/setup: "
                                                                "it also prepares the voice's graph for fast launches)")
    ap.add_argument("--input-device", metavar="NAME|INDEX", help="microphone (default: the system default)")
    ap.add_argument("--output-device", metavar="NAME|INDEX", help="speaker (default: the system default)")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    add_arguments(ap)
    return ap.parse_args(argv)


def _device(value: str | None) -> str | int | None:
    if value is None or value == "":
        return None
    return int(value) if value.isdigit() else value


def _list_devices() -> int:
    try:
        import sounddevice as sd

        print(sd.query_devices())
    except (OSError, Exception) as e:  # PortAudio missing raises OSError at import
        print(f"error: cannot list audio devices: {e}", file=sys.stderr)
        return EXIT_DEVICE
    return EXIT_OK


def _open_source(args, config):
    if args.input:
        return FileSource(args.input, config.audio.frame_ms, config.audio.sample_rate, realtime=not args.fast)
    device = _device(args.input_device or config.audio.input_device)
    return MicrophoneSource(device, config.audio.frame_ms, config.audio.sample_rate, config.audio.queue_frames)


def _open_sink(args, config, rate: int):
    if args.output:
        return WavSink(args.output, rate, pace=not (args.input and args.fast))
    return SpeakerSink(_device(args.output_device or config.audio.output_device), rate)


def _install_signals(stop: threading.Event) -> None:
    def on_signal(signum, frame):
        if stop.is_set():  # the second Ctrl-C: leave now
            os._exit(130)
        log.info("stopping (signal %d)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _forget(args: argparse.Namespace) -> int:
    path = memory_path(load_config(args.config).memory)
    try:
        found = forget(path)
    except OSError as e:
        raise MemoryStoreError(f"cannot delete the memory database {path}: {e.strerror}") from e
    print(f"forgot the stored conversation ({path})" if found else f"no stored conversation to forget ({path})")
    return EXIT_OK


def _check_models(args: argparse.Namespace) -> int:
    """Load what the configuration names, as a launch would: a missing model fails here (exit 4)
    and not at the user's first launch, which also finds Piper's graph optimized (voice.piper_voice)."""
    from .pipeline import load_engines

    config = load_config(args.config)
    t0 = time.monotonic()
    load_engines(config)
    print(f"models ready ({time.monotonic() - t0:.2f} s)")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    from .pipeline import Pipeline, load_engines

    config = load_config(args.config)
    config = apply_arguments(args, config)
    if args.llm_url or args.llm_model:  # a server answers, for this run only
        config = config.replace("llm", backend="openai", base_url=args.llm_url or config.llm.base_url,
                                api_model=args.llm_model or config.llm.api_model)
    front = Frontend(args, config)  # the window or the terminal, and the push-to-talk key
    if args.input:  # a bad file fails before minutes of model loading
        FileSource(args.input, config.audio.frame_ms)
    memory = MemoryStore(memory_path(config.memory)) if config.memory.enabled else None
    t0 = time.monotonic()
    engines = load_engines(config)
    log.info("models loaded in %.2f s", time.monotonic() - t0)
    source = _open_source(args, config)
    try:
        sink = _open_sink(args, config, engines.synthesizer.sample_rate)
    except Exception:
        source.close()
        raise
    source, sink = front.wrap_audio(source, sink)
    live = not args.input  # the microphone hears the speaker
    echo = EchoCanceller(config.echo, config.echo.delay_ms) if live and config.echo.enabled else None
    pipeline = Pipeline(config, engines, source, sink, half_duplex=live, memory=memory, echo=echo)
    try:
        front.attach(pipeline)  # the hotkey, and the window or status line (before the console printer)
    except Exception:
        front.close()
        source.close()
        sink.close()
        raise
    pipeline.bus.subscribe(ConsolePrinter())
    if args.metrics:
        pipeline.bus.subscribe(TurnMetrics(args.metrics))
    _install_signals(pipeline.stop_event)
    pipeline.start()
    if not args.input:
        print(f"listening (models and microphone ready in {time.monotonic() - t0:.2f} s; Ctrl-C to quit)", flush=True)
    try:
        front.run(pipeline)
    finally:
        front.close()
        stuck = pipeline.stop()
        if memory is not None:
            memory.close()
    if pipeline.supervisor.failure is not None:  # a stage died: already said in one line
        return EXIT_INTERNAL
    if pipeline.capture.error is not None and not isinstance(pipeline.capture.error, AudioInputError):
        return EXIT_INTERNAL
    if pipeline.capture.error is not None:
        return EXIT_DEVICE if not args.input else EXIT_INPUT
    return EXIT_INTERNAL if stuck else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.list_devices:
        return _list_devices()
    if args.fast and not args.input:
        print("error: --fast only applies with --input", file=sys.stderr)
        return EXIT_USAGE
    if args.llm_url is not None and (problem := url_problem(args.llm_url)):
        print(f"error: --llm-url {problem}", file=sys.stderr)
        return EXIT_USAGE
    if problem := check_arguments(args):
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.forget:
            return _forget(args)
        return _check_models(args) if args.check_models else run(args)
    except MemoryStoreError as e:
        print(f"error: {e}; `voice-assistant --forget` starts afresh", file=sys.stderr)
        return EXIT_MEMORY
    except HotkeyUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DEVICE
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_MODEL
    except AudioInputError as e:
        if args.input:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_INPUT
        print(f"error: {e}; to try without a microphone, replay a file with --input FILE.wav", file=sys.stderr)
        return EXIT_DEVICE
    except AudioOutputError as e:
        hint = "" if args.output else "; to try without a speaker, write the reply with --output reply.wav"
        print(f"error: {e}{hint}", file=sys.stderr)
        return EXIT_DEVICE
    except OSError as e:
        if "PortAudio" in str(e):
            print(f"error: {e}; install it (Debian: sudo apt-get install libportaudio2) or use --input/--output",
                  file=sys.stderr)
            return EXIT_DEVICE
        raise
