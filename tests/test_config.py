"""Configuration: defaults, then DATA/refmail.toml, then flags (DESIGN.md)."""

from pathlib import Path

import pytest

from refmail.config import DEFAULT_PORT_BASE, ConfigError, load_config


def test_defaults_need_no_file(tmp_path: Path) -> None:
    config = load_config(data_dir=tmp_path)
    assert config.port("smtp") == DEFAULT_PORT_BASE + 25
    assert config.port("imaps") == DEFAULT_PORT_BASE + 993
    assert config.listen == "127.0.0.1"
    assert config.local_domains == (config.hostname.lower().rstrip("."),)
    assert config.limits.smtp_command_line == 512


def test_toml_then_flags(tmp_path: Path) -> None:
    (tmp_path / "refmail.toml").write_text(
        'port_base = 20000\nhostname = "mail.lab.test"\ndomains = ["lab.test"]\n'
        "[ports]\nsmtp = 2525\n"
        "[limits]\nrecipients = 7\n"
        '[mta]\nretry = [1, 2]\n[mta.routes]\n"other.test" = "127.0.0.1:2526"\n'
    )
    config = load_config(data_dir=tmp_path, hostname="flag.lab.test")
    assert config.port_base == 20000
    assert config.port("smtp") == 2525
    assert config.port("pop3") == 20110
    assert config.hostname == "flag.lab.test"  # the flag wins
    assert config.local_domains == ("lab.test", "flag.lab.test")  # the hostname is local too
    assert config.limits.recipients == 7
    assert config.mta.retry == (1, 2)
    assert config.mta.routes == {"other.test": "127.0.0.1:2526"}


def test_port_base_zero_gives_standard_ports(tmp_path: Path) -> None:
    config = load_config(data_dir=tmp_path, port_base=0)
    assert config.port("smtp") == 25 and config.port("submission") == 587


@pytest.mark.parametrize(
    "text",
    ["hostnme = 'typo'\n", "[limits]\nrecipents = 5\n", "[ports]\nsmtpx = 1\n", "port_base = \n"],
)
def test_bad_config_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "refmail.toml").write_text(text)
    with pytest.raises(ConfigError):
        load_config(data_dir=tmp_path)


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(data_dir=tmp_path, config_file=tmp_path / "missing.toml")


def test_ports_out_of_range_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(data_dir=tmp_path, port_base=65000)
