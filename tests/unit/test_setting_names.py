"""Every name an operator writes is a setting, or the process says which one is wrong and how."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.settings import SettingError, check_names, load_settings, read_config_file

PROVIDERS = frozenset({"openai", "bfl", "kling", "sandbox"})


def error_for(environ: dict[str, str], toml: dict[str, object] | None = None) -> str:
    with pytest.raises(SettingError) as raised:
        check_names(environ, toml or {}, PROVIDERS)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_misspelt_variable_is_named_with_the_closest_real_one() -> None:
    assert error_for({"IMAGEGATE_WORKRES": "8"}) == (
        "unknown setting IMAGEGATE_WORKRES: did you mean IMAGEGATE_WORKERS?"
    )


def test_a_variable_like_no_setting_is_named_with_where_the_settings_are_listed() -> None:
    message = error_for({"IMAGEGATE_FLUX_CAPACITOR": "1"})
    assert message.startswith("unknown setting IMAGEGATE_FLUX_CAPACITOR: remove it")
    assert "imagegate config check" in message


def test_lower_case_variables_are_read_and_checked_like_upper_case_ones() -> None:
    check_names({"imagegate_workers": "8"}, {}, PROVIDERS)
    assert "IMAGEGATE_WORKERS?" in error_for({"imagegate_workres": "8"})


def test_a_misspelt_provider_or_provider_field_is_corrected_in_the_whole_name() -> None:
    assert error_for({"IMAGEGATE_PROVIDERS__OPENAL__API_KEY": "k"}).endswith(
        "did you mean IMAGEGATE_PROVIDERS__OPENAI__API_KEY?"
    )
    assert error_for({"IMAGEGATE_PROVIDERS__OPENAI__APIKEY": "k"}).endswith(
        "did you mean IMAGEGATE_PROVIDERS__OPENAI__API_KEY?"
    )


def test_provider_names_inside_a_json_value_are_checked_too() -> None:
    message = error_for({"IMAGEGATE_PROVIDERS": '{"opnai": {"api_key": "k"}}'})
    assert "did you mean IMAGEGATE_PROVIDERS__OPENAI__API_KEY?" in message


def test_provider_options_and_free_form_mappings_are_left_to_their_owners() -> None:
    check_names(
        {
            "IMAGEGATE_PROVIDERS__KLING__OPTIONS__ANYTHING": "1",
            "IMAGEGATE_PROVIDERS__OPENAI__API_KEY": "k",
            "IMAGEGATE_STORAGE_OPTIONS__ENDPOINT": "http://s3:8333",
            "IMAGEGATE_PRICES": '{"midjourney": {"default": 20}}',
            "IMAGEGATE_ROUTES__FLUX_2_PRO": '["fal:fal-ai/flux-2-pro"]',
        },
        {"providers": {"bfl": {"api_key": "k", "options": {"whatever": 1}}}},
        PROVIDERS,
    )


def test_a_nested_name_under_a_plain_setting_is_refused() -> None:
    message = error_for({"IMAGEGATE_WORKERS__MAX": "8"})
    assert message.startswith("IMAGEGATE_WORKERS__MAX: IMAGEGATE_WORKERS takes no nested names")


def test_variables_that_are_not_settings_but_are_imagegates_own_pass() -> None:
    check_names(
        {
            "IMAGEGATE_CONFIG_FILE": "x.toml",
            "IMAGEGATE_URL": "http://gw",
            "IMAGEGATE_API_KEY": "ig_live_x",
            "IMAGEGATE_TEST_PG_URL": "postgresql://",
            "OTHER_WORKRES": "8",
        },
        {},
        PROVIDERS,
    )


def test_a_misspelt_toml_key_is_named_with_its_file_and_the_closest_key() -> None:
    message = error_for({}, {"workres": 3})
    assert message == 'unknown setting "workres" in imagegate.toml: did you mean "workers"?'
    message = error_for({}, {"providers": {"openai": {"apikey": "k"}}})
    assert message.endswith('did you mean "providers.openai.api_key"?')


def test_a_named_config_file_that_is_missing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert read_config_file({}) == {}  # the default file is optional
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingError, match=r"IMAGEGATE_CONFIG_FILE=.*nope\.toml: no such file"):
        read_config_file({"IMAGEGATE_CONFIG_FILE": str(missing)})


def test_a_broken_toml_file_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "imagegate.toml"
    broken.write_text("workers = [\n")
    with pytest.raises(SettingError, match="not a readable TOML file") as raised:
        read_config_file({"IMAGEGATE_CONFIG_FILE": str(broken)})
    assert "\n" not in str(raised.value)


def test_a_bad_value_names_the_variable_and_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGATE_WORKERS", "many")
    with pytest.raises(SettingError) as raised:
        load_settings(PROVIDERS, environ={"IMAGEGATE_WORKERS": "many"})
    assert str(raised.value) == (
        "invalid setting IMAGEGATE_WORKERS: "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_a_value_that_is_not_json_where_json_is_needed_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAGEGATE_ROUTES", "{flux: fal}")
    with pytest.raises(SettingError, match=r"^invalid setting IMAGEGATE_ROUTES: not valid JSON$"):
        load_settings(PROVIDERS, environ={"IMAGEGATE_ROUTES": "{flux: fal}"})
