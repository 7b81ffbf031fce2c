"""Every setting is CALMLINE_X in the environment and --x on the command line; flags win."""

import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from service import config
from service.auth import AGENT, INGEST, SUPERVISOR, load_credentials, token_from


def parse(argv, env):
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.load(parser.parse_args(argv), environ=env)


def test_defaults_match_the_design():
    s = parse([], {})
    assert (s.host, s.port, s.model, s.device) == ("127.0.0.1", 8080, "bundled", "auto")
    assert s.sqlalchemy_url.startswith("sqlite:///") and s.sqlalchemy_url.endswith("calmline-data/calmline.db")


def test_env_and_flags_share_names_and_flags_win():
    env = {"CALMLINE_PORT": "9000", "CALMLINE_DATA_DIR": "/tmp/x", "CALMLINE_AGENT_TOKENS": "a-1=t1, a-2=t2",
           "CALMLINE_INGEST_KEYS": "k1,k2", "CALMLINE_DATABASE_URL": "postgresql://db/calmline"}
    s = parse(["--port", "9100", "--model", "/models/small.en"], env)
    assert s.port == 9100 and s.data_dir == Path("/tmp/x") and s.model == "/models/small.en"
    assert s.agent_tokens == {"a-1": "t1", "a-2": "t2"} and s.ingest_keys == ["k1", "k2"]
    assert s.sqlalchemy_url == "postgresql://db/calmline"
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings and a.dest != "help"}
    assert flags == {config.flag_name(f.name) for f in fields(config.Settings)}


def test_bad_values_are_clear_errors():
    with pytest.raises(SystemExit, match="CALMLINE_PORT"):
        config.load(environ={"CALMLINE_PORT": "eighty"})
    with pytest.raises(SystemExit, match="CALMLINE_AGENT_TOKENS"):
        config.load(environ={"CALMLINE_AGENT_TOKENS": "just-a-token"})
    with pytest.raises(SystemExit, match="CALMLINE_TWILIO_PAUSE"):
        config.load(environ={"CALMLINE_TWILIO_PAUSE": "sometimes"})


def test_a_switch_reads_as_people_write_it():
    assert parse([], {}).twilio_pause is False
    for word in ("true", "1", "Yes", "ON"):
        assert parse([], {"CALMLINE_TWILIO_PAUSE": word}).twilio_pause is True
    for word in ("false", "0", "no", "off", ""):
        assert parse([], {"CALMLINE_TWILIO_PAUSE": word}).twilio_pause is False
    assert parse(["--twilio-pause", "false"], {"CALMLINE_TWILIO_PAUSE": "true"}).twilio_pause is False


def test_development_tokens_are_generated_once_and_kept(tmp_path):
    s = config.load(environ={}, data_dir=tmp_path)
    first = load_credentials(s)
    assert first.development and first.ingest_keys and first.agent_tokens and first.supervisor_tokens
    assert load_credentials(s).agent_tokens == first.agent_tokens
    assert oct((tmp_path / "dev-tokens.json").stat().st_mode)[-3:] == "600"


def test_configured_tokens_and_auth_file(tmp_path):
    (tmp_path / "auth.json").write_text('{"agent_tokens": {"a-9": "t9"}, "supervisor_tokens": ["s9"]}')
    s = config.load(environ={"CALMLINE_INGEST_KEYS": "k", "CALMLINE_AUTH_FILE": str(tmp_path / "auth.json")},
                    data_dir=tmp_path)
    creds = load_credentials(s)
    assert not creds.development
    assert creds.identify("k").role == INGEST
    assert creds.identify("t9").role == AGENT and creds.identify("t9").agent_id == "a-9"
    assert creds.identify("s9").role == SUPERVISOR
    assert creds.identify("nope") is None and creds.identify("") is None


@pytest.mark.parametrize("headers, query, basic, token", [
    ({"authorization": "Bearer abc"}, {}, False, "abc"),
    ({"authorization": "Basic dXNlcjpzZWNyZXQ="}, {}, True, "secret"),  # user:secret, where Basic is accepted
    ({"authorization": "Basic dXNlcjpzZWNyZXQ="}, {}, False, None),  # anywhere else: no token
    ({"authorization": "Basic dXNlcjpzZWNyZXQ="}, {"token": "q"}, False, None),  # not the query's either
    ({}, {"token": "q"}, False, "q"),
    ({}, {"token": "q"}, True, "q"),
    ({"authorization": "Basic !!!"}, {}, True, None),
    ({}, {}, False, None),
])
def test_token_sources(headers, query, basic, token):
    assert token_from(headers, query, basic=basic) == token
