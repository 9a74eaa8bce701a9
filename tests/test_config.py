import pytest

from voice.config import ConfigError, load_config


def test_defaults_load(config):
    assert config.audio.sample_rate == 16000 and config.vad.end_silence_ms == 400
    assert config.llm.model == "bundled"


def test_user_file_merges_over_defaults(tmp_path):
    f = tmp_path / "my.toml"
    f.write_text('[vad]\nend_silence_ms = 700\n[llm]\ntemperature = 1\n')
    c = load_config(f)
    assert c.vad.end_silence_ms == 700 and c.vad.pre_roll_ms == 300
    assert c.llm.temperature == 1.0 and isinstance(c.llm.temperature, float)


@pytest.mark.parametrize("text, key", [
    ("[vad]\nend_silence = 3\n", "vad.end_silence"),
    ("[nope]\nx = 1\n", "nope"),
    ("[vad]\nend_silence_ms = 'long'\n", "vad.end_silence_ms"),
    ("[audio]\nframe_ms = 25\n", "audio.frame_ms"),
    ('[llm]\nbackend = "cloud"\n', "llm.backend"),
    ('[llm]\nbackend = "openai"\nbase_url = "localhost:8080"\n', "llm.base_url"),
    ("[llm]\ntimeout_s = 0\n", "llm.timeout_s"),
    ('[llm]\nfallback_to_local = "yes"\n', "llm.fallback_to_local"),
])
def test_bad_keys_are_named(tmp_path, text, key):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(f)


def test_malformed_toml(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[vad\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)
