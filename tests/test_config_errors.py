"""A config that would fail, hang or blow up later is a one-line ConfigError at load time (exit 2,
and `config check` reports it): bad endpoints and numbers, wrong types, YAML alias bombs,
self-references, deep nesting, huge files. load_config is called in-process."""
import time

import pytest

from conftest import invoke
from sms_cli.config.load import load_config
from sms_cli.core.errors import ConfigError

USPEEDO = "providers:\n  a:\n    type: uspeedo\n"


def provider(**keys) -> str:
    return USPEEDO + "".join(f"    {k}: {v}\n" for k, v in keys.items())


BAD = [
    # endpoints: http(s), a host, a valid port
    (provider(endpoint="example.com/api"), "http:// or https://"),
    (provider(endpoint="ftp://example.com/"), "http:// or https://"),
    (provider(endpoint="'http://'"), "no host"),
    (provider(endpoint="http://example.com:70000/"), "Port out of range"),
    (provider(endpoint="http://example.com:0/"), "port 0"),
    (provider(endpoint="http://example.com:http/"), "endpoint"),
    (provider(endpoint="'http://[::1'"), "Invalid IPv6"),
    (provider(endpoint="'http://exa mple.com/'"), "spaces"),
    (provider(endpoint="[http://a]"), "endpoint"),
    # numbers: finite and in range
    (provider(timeout="0"), "timeout: must be more than 0"),
    (provider(timeout="nan"), "finite"),
    (provider(timeout="inf"), "finite"),
    (provider(timeout="1e300"), "at most 600"),
    (provider(timeout="{connect: -1}"), "timeout.connect"),
    (provider(timeout="{read: .nan}"), "timeout.read"),
    (provider(timeout="[1, 2]"), "expected a number, got a list"),
    (provider(rate_limit="-1"), "rate_limit: must be at least 0"),
    (provider(rate_limit="1e9"), "rate_limit: must be at most 10000"),
    (provider(rate_limit="inf"), "rate_limit"),
    (provider(max_attempts="0"), "max_attempts: must be at least 1"),
    (provider(max_attempts="101"), "max_attempts: must be at most 100"),
    (provider(max_attempts="-3"), "max_attempts"),
    (provider(max_attempts="1.5"), "whole number"),
    (provider(max_attempts="9" * 5000), "whole number"),
    (provider(backoff="{base: nan}"), "backoff.base"),
    (provider(backoff="{cap: inf}"), "backoff.cap"),
    (provider(backoff="{base: -1}"), "backoff.base"),
    (provider(backoff="{cap: 1e300}"), "backoff.cap"),
    ("grace_period: nan\n", "grace_period"),
    ("grace_period: -1\n", "grace_period"),
    ("grace_period: 1e300\n", "grace_period"),
    # wrong types
    ("providers: [1, 2]\n", "providers: expected a mapping"),
    ("templates: [a]\n", "templates: expected a mapping"),
    ("default_region: [a]\n", "default_region"),
    ("default_provider: {a: 1}\n", "default_provider"),
    ("providers:\n  a: [1]\n", "providers.a: expected a mapping"),
    ("providers:\n  a:\n    type: [uspeedo]\n", "providers.a.type"),
    (provider(sender_id="{a: 1}"), "sender_id: expected a single value"),
    ("templates:\n  T: {params: {x: 1}}\n", "templates.T.params"),
    ("templates:\n  T: {params: [[a]]}\n", "templates.T.params"),
    ("templates:\n  T: {params: [a, a]}\n", "twice"),
    ("templates:\n  T: {text: [a]}\n", "templates.T.text"),
    ("templates:\n  T: {params: 1000}\n", "templates.T.params"),
    ("- a\n- b\n", "mapping at the top level"),
    # YAML itself
    ("a: &a [*a]\n", "anchors"),
    ("providers:\n  a: &x {type: outbox}\n  b: *x\n", "anchors"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 50"),
    ("x:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(1, 200)), "nested more than 50"),
    ("providers:\n  a: {type: outbox}\n  a: {type: uspeedo}\n", "twice"),
    ("providers: !!python/object:os.system {}\n", "constructor"),
    ("x: [\n", "sms-cli.yaml"),
]

BILLION_LAUGHS = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def load(tmp_path, text: str, **kw):
    path = tmp_path / "sms-cli.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(str(path), **kw)


@pytest.mark.parametrize("text,expect", BAD)
def test_bad_config_is_one_line_config_error(tmp_path, text, expect):
    started = time.monotonic()
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text, strict_env=False)
    message = str(exc.value)
    assert expect in message and "\n" not in message and len(message) < 400
    assert "sms-cli.yaml" in message
    assert time.monotonic() - started < 2


def test_alias_bomb_is_refused_at_once(tmp_path):
    started = time.monotonic()
    with pytest.raises(ConfigError, match="anchors"):
        load(tmp_path, BILLION_LAUGHS)
    assert time.monotonic() - started < 1


def test_huge_and_binary_configs(tmp_path):
    with pytest.raises(ConfigError, match="larger than 256 KiB"):
        load(tmp_path, "# " + "x" * (2 << 20) + "\n")
    started = time.monotonic()  # the worst a file under the limit can do: one long flow list
    with pytest.raises(ConfigError, match="unknown key"):
        load(tmp_path, "x: [" + "a, " * 20_000 + "]\n")
    assert time.monotonic() - started < 5
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"providers:\n  a: {type: outbox}\n\xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bin.yaml:3: .*not UTF-8"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(str(tmp_path))  # a directory


def test_good_values_at_the_edges_load(tmp_path):
    cfg = load(tmp_path, provider(endpoint="https://[::1]:8443/api", timeout="{connect: 0.5, read: 600}",
                                  rate_limit="10000", max_attempts="100", backoff="{base: 0, cap: 3600}")
               + "grace_period: 0\ntemplates:\n  T: {params: [code, name], text: 'Hi {name}'}\n  U: {params: 2}\n")
    p = cfg.providers["a"]
    assert (p.endpoint, p.connect_timeout, p.read_timeout, p.rate_limit, p.max_attempts) == \
        ("https://[::1]:8443/api", 0.5, 600.0, 10000.0, 100)
    assert (p.backoff_base, p.backoff_cap, cfg.grace_period) == (0.0, 3600.0, 0.0)
    assert cfg.templates["T"].names == ("code", "name") and cfg.templates["U"].count == 2


def test_endpoint_from_a_missing_variable_reports_the_variable(tmp_path):
    text = provider(endpoint="${SMS_TEST_UNSET_ENDPOINT}/api")
    cfg = load(tmp_path, text, strict_env=False)
    assert cfg.missing_vars == ["SMS_TEST_UNSET_ENDPOINT"]
    with pytest.raises(ConfigError, match="SMS_TEST_UNSET_ENDPOINT"):
        load(tmp_path, text)


def test_variables_inside_lists_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("SMS_TEST_COUNTRY", "SG")
    cfg = load(tmp_path, "countries: {allow: [HK, '${SMS_TEST_COUNTRY}']}\n")
    assert cfg.guards["countries"] == {"allow": ["HK", "SG"]}


def test_config_check_reports_a_bad_endpoint(tmp_path):
    (tmp_path / "sms-cli.yaml").write_text(provider(endpoint="ftp://example.com/"))
    r = invoke("config", "check", cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "endpoint" in r.stderr
