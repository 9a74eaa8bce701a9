"""A local, real-time voice assistant: webrtcvad, faster-whisper, llama.cpp and Piper."""

__version__ = "0.1.0"
APP_NAME = "voice-assistant"  # the user's data and cache directories are named so
