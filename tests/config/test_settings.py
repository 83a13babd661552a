"""Settings: defaults, the three override layers, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import DEFAULTS_FILE, Settings, SettingsError, load_settings


def test_defaults_come_from_the_shipped_file() -> None:
    settings = load_settings()
    assert settings.serve_host == "127.0.0.1"
    assert settings.serve_port == 8000
    assert settings.database_url == ""


def test_every_setting_has_a_documented_default() -> None:
    import tomllib

    defaults = tomllib.loads(DEFAULTS_FILE.read_text())
    assert set(defaults) == set(Settings.model_fields)
    assert all(field.description for field in Settings.model_fields.values())


def test_environment_overrides_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config_file = tmp_path / "altcredit.toml"
    config_file.write_text('serve_port = 9001\nserve_host = "0.0.0.0"\n')
    monkeypatch.setenv("ALTCREDIT_CONFIG", str(config_file))
    monkeypatch.setenv("ALTCREDIT_SERVE_PORT", "9002")
    settings = load_settings()
    assert settings.serve_port == 9002
    assert settings.serve_host == "0.0.0.0"


def test_keyword_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTCREDIT_SERVE_PORT", "9002")
    assert load_settings(serve_port=9003).serve_port == 9003


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTCREDIT_SERVE_PORT", "abc")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.key == "ALTCREDIT_SERVE_PORT"
    assert "abc" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "key", "problem"),
    [
        ("serve_port = 70000\n", "serve_port", "less than or equal to 65535"),
        ("log_level = 'LOUD'\n", "log_level", "Input should be"),
        ("colour = 'blue'\n", "colour", "unknown key"),
        ("database_url = 'mysql://x'\n", "database_url", "postgresql"),
    ],
)
def test_bad_config_file_value_names_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str, key: str, problem: str
) -> None:
    config_file = tmp_path / "bad.toml"
    config_file.write_text(content)
    monkeypatch.setenv("ALTCREDIT_CONFIG", str(config_file))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.key == key
    assert problem in str(caught.value)


def test_missing_or_malformed_config_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALTCREDIT_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(SettingsError, match="no such file"):
        load_settings()
    broken = tmp_path / "broken.toml"
    broken.write_text("serve_port = [")
    monkeypatch.setenv("ALTCREDIT_CONFIG", str(broken))
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings()


def test_data_home_is_created_on_demand(tmp_path: Path) -> None:
    home = tmp_path / "deep" / "home"
    settings = load_settings(home=home)
    assert not home.exists()
    target = settings.path("lake", "events")
    assert home.is_dir()
    assert target == home.resolve() / "lake" / "events"
    assert settings.resolved_database_url == f"sqlite:///{home.resolve() / 'altcredit.db'}"


def test_generated_secret_is_stable_and_private(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    first = settings.session_secret()
    assert first == settings.session_secret()
    assert len(first) == 64
    assert (settings.path("secret_key").stat().st_mode & 0o777) == 0o600
    assert load_settings(home=tmp_path / "home", secret_key="given").session_secret() == "given"


def test_readme_configuration_table_is_current() -> None:
    from config.settings_doc import replace_table

    readme = Path(__file__).parents[2] / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert replace_table(text) == text, "run: .venv/bin/python -m config.settings_doc --write README.md"


def test_cross_field_error_names_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTCREDIT_DRIFT_PSI_WARN", "0.5")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.key == "ALTCREDIT_DRIFT_PSI_WARN"
    assert "below drift_psi_alarm" in str(caught.value)
