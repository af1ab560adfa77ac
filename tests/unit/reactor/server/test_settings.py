"""Server settings: defaults, ``REACTOR_*`` environment variables, flags, and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reactor.server.settings import ServerSettings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``REACTOR_*`` variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("REACTOR_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings()

    assert isinstance(settings, ServerSettings)
    assert settings.host == "127.0.0.1"
    assert settings.port == 3210
    assert settings.http_port == 3211
    assert settings.data == Path(".reactor")
    assert settings.storage is None
    assert settings.log_level == "info"
    assert settings.public_url is None
    assert settings.max_upload_bytes == 1 << 30
    assert settings.admin_key_file is None


class TestSources:
    def test_environment_variables_are_read(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REACTOR_PORT", "4000")
        monkeypatch.setenv("REACTOR_DATA", "/var/lib/reactor")
        monkeypatch.setenv("REACTOR_LOG_LEVEL", "debug")

        settings = load_settings()

        assert (settings.port, settings.data, settings.log_level) == (
            4000,
            Path("/var/lib/reactor"),
            "debug",
        )

    def test_flags_take_precedence_over_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REACTOR_PORT", "4000")
        monkeypatch.setenv("REACTOR_HOST", "0.0.0.0")

        settings = load_settings(port=5000)

        assert (settings.port, settings.host) == (5000, "0.0.0.0")

    def test_flags_left_unset_do_not_override(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REACTOR_PORT", "4000")

        settings = load_settings(port=None, storage=None)

        assert settings.port == 4000

    def test_an_unrelated_reactor_variable_is_ignored(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REACTOR_TEST_STORAGE", "mongodb://localhost")

        assert load_settings().storage is None


class TestErrors:
    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"port": 0}, r"port: Input should be greater than or equal to 1"),
            ({"port": 70000}, r"port: Input should be less than or equal to 65535"),
            ({"http_port": -1}, r"http_port: Input should be greater than or equal to 0"),
            ({"max_upload_bytes": -5}, r"max_upload_bytes: Input should be greater"),
            ({"log_level": "loud"}, r"log_level: Input should be 'debug', 'info'"),
            ({"public_url": "example.com"}, r"public_url: Value error, must start with http"),
            ({"bogus": 1}, r"bogus: Extra inputs are not permitted"),
        ],
    )
    def test_a_bad_value_names_the_setting(
        self, overrides: dict[str, object], message: str
    ) -> None:
        with pytest.raises(SettingsError, match=rf"^invalid server configuration: {message}"):
            load_settings(**overrides)

    def test_a_bad_environment_variable_names_the_setting(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REACTOR_PORT", "not-a-number")

        with pytest.raises(SettingsError, match=r"port: Input should be a valid integer"):
            load_settings()

    def test_every_problem_is_listed(self) -> None:
        with pytest.raises(SettingsError, match=r"port: .*; log_level: "):
            load_settings(port=0, log_level="loud")

    def test_settings_error_is_a_value_error(self) -> None:
        assert issubclass(SettingsError, ValueError)


class TestUrls:
    def test_the_origin_defaults_to_host_and_port(self) -> None:
        settings = load_settings(host="10.0.0.5", port=8000, http_port=8001)

        assert settings.origin == "http://10.0.0.5:8000"
        assert settings.site_origin == "http://10.0.0.5:8001"

    def test_a_public_url_is_the_origin_without_a_trailing_slash(self) -> None:
        settings = load_settings(public_url="https://api.example.com/")

        assert settings.public_url == "https://api.example.com"
        assert settings.origin == "https://api.example.com"

    def test_http_port_zero_disables_http_actions(self) -> None:
        settings = load_settings(http_port=0)

        assert settings.site_origin is None
        assert settings.system_env == {"CONVEX_CLOUD_URL": "http://127.0.0.1:3210"}

    def test_system_env_names_both_urls(self) -> None:
        settings = load_settings(public_url="http://localhost:9000")

        assert settings.system_env == {
            "CONVEX_CLOUD_URL": "http://localhost:9000",
            "CONVEX_SITE_URL": "http://127.0.0.1:3211",
        }


class TestHttpPort:
    def test_it_follows_the_port_flag(self) -> None:
        assert load_settings(port=4000).http_port == 4001
        assert load_settings(port=4000).site_origin == "http://127.0.0.1:4001"

    def test_it_follows_the_port_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REACTOR_PORT", "4100")

        assert load_settings().http_port == 4101

    def test_the_port_flag_beats_the_port_variable_for_it_too(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REACTOR_PORT", "4100")

        assert load_settings(port=5000).http_port == 5001

    def test_an_explicit_http_port_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert load_settings(port=4000, http_port=9000).http_port == 9000
        monkeypatch.setenv("REACTOR_HTTP_PORT", "9100")
        assert load_settings(port=4000).http_port == 9100

    def test_zero_turns_it_off_whatever_the_port(self) -> None:
        settings = load_settings(port=4000, http_port=0)

        assert settings.http_port == 0
        assert settings.site_origin is None

    def test_it_must_differ_from_the_port(self) -> None:
        with pytest.raises(SettingsError, match=r"http_port: 4000 is also the API port"):
            load_settings(port=4000, http_port=4000)

    def test_the_highest_port_needs_an_explicit_http_port(self) -> None:
        with pytest.raises(SettingsError, match=r"http_port: defaults to port \+ 1 = 65536"):
            load_settings(port=65535)
        assert load_settings(port=65535, http_port=0).site_origin is None

    def test_a_bad_port_is_reported_as_the_port(self) -> None:
        with pytest.raises(SettingsError, match=r"^invalid server configuration: port: "):
            load_settings(port="x")
