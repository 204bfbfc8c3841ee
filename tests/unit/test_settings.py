"""Settings: sources, precedence, and one-line errors that name the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbctl.settings import LogFormat, LogLevel, Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("LBCTL_"):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    s = load_settings()
    assert s.service_cidrs == ["10.96.0.0/12"]
    assert str(s.port_range) == "30000-32767"
    assert (s.log_level, s.log_format) == (LogLevel.INFO, LogFormat.TEXT)
    assert s.data_dir == Path(".lbctl")


def test_every_field_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description and len(field.description) > 30, name
        assert "Default" in field.description, f"{name}: say what the default is and why"


def test_precedence_flag_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "lbctl.yaml"
    cfg.write_text("node_port_range: 20000-20100\nlog_format: json\nlog_level: debug\n")
    monkeypatch.setenv("LBCTL_NODE_PORT_RANGE", "21000-21100")
    monkeypatch.setenv("LBCTL_SERVICE_CIDRS", "10.5.0.0/16, fd00:10::/112")
    s = load_settings(cfg, log_level="warning")
    assert s.node_port_range == "21000-21100"  # env beats file
    assert s.log_format is LogFormat.JSON  # file beats default
    assert s.log_level is LogLevel.WARNING  # flag beats file
    assert s.service_cidrs == ["10.5.0.0/16", "fd00:10::/112"]


def test_toml_and_config_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "lbctl.toml"
    cfg.write_text('service_cidrs = ["fd00::/108"]\n')
    monkeypatch.setenv("LBCTL_CONFIG", str(cfg))
    assert load_settings().service_cidrs == ["fd00::/108"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"service_cidrs": "10.0.0.0/8"},
            "invalid setting service_cidrs (LBCTL_SERVICE_CIDRS): "
            "10.0.0.0/8 is too large; for 32-bit addresses, the mask must be >= 12",
        ),
        (
            {"service_cidrs": "fd00::/96"},
            "invalid setting service_cidrs (LBCTL_SERVICE_CIDRS): "
            "fd00::/96 is too large; for 128-bit addresses, the mask must be >= 108",
        ),
        (
            {"service_cidrs": "10.0.0.0/30"},
            "invalid setting service_cidrs (LBCTL_SERVICE_CIDRS): "
            "10.0.0.0/30 is too small; a service range needs at least 8 addresses",
        ),
        (
            {"service_cidrs": "10.0.0.1/24"},
            "invalid setting service_cidrs (LBCTL_SERVICE_CIDRS): "
            "'10.0.0.1/24' is not a CIDR: 10.0.0.1/24 has host bits set",
        ),
        (
            {"service_cidrs": "10.0.0.0/24,10.1.0.0/24"},
            "invalid setting service_cidrs "
            "(LBCTL_SERVICE_CIDRS): two CIDRs of the same IP family; dual-stack needs one of each",
        ),
        (
            {"service_cidrs": "10.0.0.0/24,fd00::/120,10.2.0.0/24"},
            "invalid setting service_cidrs "
            "(LBCTL_SERVICE_CIDRS): expected one or two CIDRs (one per IP family), got 3",
        ),
        (
            {"node_port_range": "32767-30000"},
            "invalid setting node_port_range "
            "(LBCTL_NODE_PORT_RANGE): '32767-30000': "
            "ports must satisfy 1 <= first <= last <= 65535",
        ),
        (
            {"log_level": "loud"},
            "invalid setting log_level (LBCTL_LOG_LEVEL): Input should be "
            "'DEBUG', 'INFO', 'WARNING' or 'ERROR'",
        ),
        (
            {"lease_namespace": "Kube_System"},
            "invalid setting lease_namespace (LBCTL_LEASE_NAMESPACE): String should match "
            "pattern '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'",
        ),
        (
            {"log_format": "xml"},
            "invalid setting log_format (LBCTL_LOG_FORMAT): Input should be 'text' or 'json'",
        ),
    ],
)
def test_bad_values_give_one_line_naming_the_setting(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.yaml", "node_port_range: [\n", "config file {p}: while parsing a flow node"),
        ("a.yaml", "- a\n- b\n", "config file {p}: must be a mapping of setting names to values"),
        ("a.yaml", "colour: red\n", "invalid setting colour (LBCTL_COLOUR): unknown setting"),
        ("a.toml", "node_port_range = \n", "config file {p}: Invalid value"),
        ("a.ini", "x=1", "config file {p}: must end in .yaml, .yml or .toml"),
    ],
)
def test_bad_config_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert str(info.value).startswith(message.format(p=path))
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"config file .*nope.yaml: .*No such file"):
        load_settings(tmp_path / "nope.yaml")


def _lbctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_")}
    return subprocess.run(
        [sys.executable, "-m", "lbctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        check=False,
    )


def test_cli_bad_env_exits_2_with_one_line() -> None:
    proc = _lbctl("settings", env={"LBCTL_NODE_PORT_RANGE": "abc"})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "lbctl: invalid setting node_port_range (LBCTL_NODE_PORT_RANGE): "
        "'abc' is not a port range of the form 30000-32767\n"
    )


def test_cli_bad_flag_exits_2_with_one_line() -> None:
    proc = _lbctl("up", "--service-cidrs", "10.0.0.0/8")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "service_cidrs" in proc.stderr


def test_cli_help_lists_commands() -> None:
    proc = _lbctl("--help")
    assert proc.returncode == 0
    for command in ("up", "settings"):
        assert f"    {command}" in proc.stdout


def test_cli_settings_prints_effective_values() -> None:
    proc = _lbctl("settings", "--node-port-range", "31000-31010")
    assert proc.returncode == 0, proc.stderr
    assert '"node_port_range": "31000-31010"' in proc.stdout
