"""load_settings(): defaults < rabbitrun.toml < RABBITRUN__SECTION__KEY < overrides; errors that name the key,
where it came from and the closest valid key; secrets that mask themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from rabbitrun.errors import EXIT_USAGE, ConfigError
from rabbitrun.settings import Secret, load_settings, mask_url


def _toml(home: Path, text: str) -> Path:
    path = home / "rabbitrun.toml"
    path.write_text(text)
    return path


def _config_error(home: Path, env: dict[str, str] | None = None, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(home=home, env=env or {}, **kwargs)  # type: ignore[arg-type]
    assert info.value.exit_code == EXIT_USAGE
    return info.value


# --- defaults and precedence ------------------------------------------------------------


def test_defaults_put_database_dags_and_logs_under_home(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path, env={}, read_file=False)
    assert s.home == tmp_path.absolute()
    assert s.database.url == f"sqlite:///{tmp_path / 'rabbitrun.db'}"
    assert isinstance(s.database.url, Secret)
    assert s.core.dags_folder == str(tmp_path / "dags")
    assert s.logging.base_log_folder == str(tmp_path / "logs")
    assert s.broker.url == "amqp://guest:guest@127.0.0.1:5672/"
    assert s.worker.queues == ("default",) and s.worker.concurrency == 16
    assert s.worker.hostname.startswith("worker@") and s.scheduler.scheduler_id
    assert s.config_file == tmp_path / "rabbitrun.toml"


def test_home_comes_from_rabbitrun_home_when_not_given(tmp_path: Path) -> None:
    s = load_settings(env={"RABBITRUN_HOME": str(tmp_path)}, read_file=False)
    assert s.home == tmp_path.absolute()
    assert s.core.dags_folder == str(tmp_path / "dags")


def test_toml_file_beats_defaults(tmp_path: Path) -> None:
    _toml(tmp_path, '[worker]\nconcurrency = 4\nqueues = ["a", "b"]\n[broker]\nprefix = "file"\n')
    s = load_settings(home=tmp_path, env={})
    assert (s.worker.concurrency, s.worker.queues, s.broker.prefix) == (4, ("a", "b"), "file")


def test_environment_beats_toml_file_key_by_key(tmp_path: Path) -> None:
    _toml(tmp_path, '[worker]\nconcurrency = 4\n[broker]\nprefix = "file"\n')
    s = load_settings(home=tmp_path, env={"RABBITRUN__WORKER__CONCURRENCY": "8"})
    assert s.worker.concurrency == 8
    assert s.broker.prefix == "file", "keys the environment does not set keep the file's value"


def test_overrides_beat_environment_and_file(tmp_path: Path) -> None:
    _toml(tmp_path, "[worker]\nconcurrency = 4\n")
    s = load_settings(
        home=tmp_path, env={"RABBITRUN__WORKER__CONCURRENCY": "8"}, overrides={"worker": {"concurrency": 12}}
    )
    assert s.worker.concurrency == 12


def test_read_file_false_ignores_the_toml_file(tmp_path: Path) -> None:
    _toml(tmp_path, "[worker]\nconcurrency = 4\n")
    assert load_settings(home=tmp_path, env={}, read_file=False).worker.concurrency == 16


def test_environment_sets_broker_database_dags_and_log_folders(tmp_path: Path) -> None:
    env = {
        "RABBITRUN__BROKER__URL": "amqp://u:pw@rabbit:5672/vh",
        "RABBITRUN__DATABASE__URL": "postgresql+psycopg://u:pw@db/rr",
        "RABBITRUN__CORE__DAGS_FOLDER": "/srv/dags",
        "RABBITRUN__LOGGING__BASE_LOG_FOLDER": "/var/log/rr",
    }
    s = load_settings(home=tmp_path, env=env, read_file=False)
    assert s.broker.url == "amqp://u:pw@rabbit:5672/vh" and isinstance(s.broker.url, Secret)
    assert s.database.url == "postgresql+psycopg://u:pw@db/rr"
    assert s.core.dags_folder == "/srv/dags"
    assert s.logging.base_log_folder == "/var/log/rr"


def test_environment_names_are_case_insensitive_after_the_prefix(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path, env={"RABBITRUN__Worker__Concurrency": "3"}, read_file=False)
    assert s.worker.concurrency == 3


def test_unrelated_environment_variables_are_ignored(tmp_path: Path) -> None:
    env = {"PATH": "/bin", "RABBITRUN_HOME": str(tmp_path), "RABBITRUNX__CORE__Y": "1", "HOME": "/root"}
    assert load_settings(home=tmp_path, env=env, read_file=False).worker.concurrency == 16


def test_variable_and_connection_overrides_are_collected_in_lower_case(tmp_path: Path) -> None:
    env = {"RABBITRUN_VAR_API_KEY": "k", "RABBITRUN_CONN_MY_DB": "postgresql://h/db"}
    s = load_settings(home=tmp_path, env=env, read_file=False)
    assert dict(s.env_variables) == {"api_key": "k"}
    assert dict(s.env_connections) == {"my_db": "postgresql://h/db"}


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("a, b", ("a", "b")),
        ("default", ("default",)),
        (" a ,, b ,", ("a", "b")),
        ("high_priority,default", ("high_priority", "default")),
    ],
)
def test_worker_queues_from_the_environment_are_split_on_commas(
    tmp_path: Path, raw: str, expected: tuple[str, ...]
) -> None:
    s = load_settings(home=tmp_path, env={"RABBITRUN__WORKER__QUEUES": raw}, read_file=False)
    assert s.worker.queues == expected


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("true", True),
        ("1", True),
        ("YES", True),
        (" on ", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("Off", False),
    ],
)
def test_boolean_spellings_from_the_environment(tmp_path: Path, raw: str, expected: bool) -> None:
    s = load_settings(home=tmp_path, env={"RABBITRUN__CORE__LOAD_EXAMPLES": raw}, read_file=False)
    assert s.core.load_examples is expected


def test_floats_and_ints_are_converted_from_environment_strings(tmp_path: Path) -> None:
    env = {"RABBITRUN__CORE__TASK_QUEUED_TIMEOUT_S": "2.5", "RABBITRUN__BROKER__MAX_PRIORITY": " 5 "}
    s = load_settings(home=tmp_path, env=env, read_file=False)
    assert s.core.task_queued_timeout_s == 2.5 and s.broker.max_priority == 5


# --- errors that name the key, the source and the close match ---------------------------


def test_unknown_key_in_toml_names_key_file_and_close_match(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[worker]\nconcurency = 4\n")
    err = _config_error(tmp_path)
    assert err.key == "worker.concurency" and err.source == str(path)
    assert "concurency" in str(err) and str(path) in str(err) and "did you mean 'concurrency'" in str(err)


def test_unknown_section_in_toml_names_the_close_section(tmp_path: Path) -> None:
    _toml(tmp_path, '[brokr]\nurl = "amqp://x"\n')
    err = _config_error(tmp_path)
    assert err.key == "brokr" and "did you mean 'broker'" in str(err)


def test_unknown_key_in_environment_names_key_source_and_close_match(tmp_path: Path) -> None:
    err = _config_error(tmp_path, {"RABBITRUN__WORKER__CONCURENCY": "4"}, read_file=False)
    assert err.key == "worker.concurency" and err.source == "environment"
    assert "environment" in str(err) and "did you mean 'concurrency'" in str(err)


def test_unknown_section_in_environment_is_an_error(tmp_path: Path) -> None:
    err = _config_error(tmp_path, {"RABBITRUN__DATABSE__URL": "sqlite://"}, read_file=False)
    assert err.source == "environment" and "did you mean 'database'" in str(err)


def test_unknown_key_without_a_close_match_lists_the_valid_keys(tmp_path: Path) -> None:
    err = _config_error(tmp_path, {"RABBITRUN__METRICS__ZZZZZZZZ": "1"}, read_file=False)
    assert "valid:" in str(err) and "scheduler_port" in str(err)


def test_unknown_key_in_overrides_names_the_command_line(tmp_path: Path) -> None:
    err = _config_error(tmp_path, read_file=False, overrides={"worker": {"queue": "x"}})
    assert err.source == "command line" and "did you mean 'queues'" in str(err)


@pytest.mark.parametrize(
    "name,value,key",
    [
        ("RABBITRUN__WORKER__CONCURRENCY", "lots", "worker.concurrency"),
        ("RABBITRUN__WORKER__CONCURRENCY", "1.5", "worker.concurrency"),
        ("RABBITRUN__CORE__LOAD_EXAMPLES", "maybe", "core.load_examples"),
        ("RABBITRUN__CORE__LOAD_EXAMPLES", "", "core.load_examples"),
        ("RABBITRUN__WORKER__SHUTDOWN_TIMEOUT_S", "soon", "worker.shutdown_timeout_s"),
        ("RABBITRUN__METRICS__WORKER_PORT", "", "metrics.worker_port"),
    ],
)
def test_bad_value_in_environment_names_the_key_and_the_value(tmp_path: Path, name: str, value: str, key: str) -> None:
    err = _config_error(tmp_path, {name: value}, read_file=False)
    assert err.key == key and err.source == "environment"
    assert key.split(".")[1] in str(err) and repr(value) in str(err)


@pytest.mark.parametrize(
    "line,key",
    [
        ("concurrency = true", "worker.concurrency"),
        ('concurrency = "eight"', "worker.concurrency"),
        ("shutdown_timeout_s = false", "worker.shutdown_timeout_s"),
        ("hostname = { a = 1 }", "worker.hostname"),
    ],
)
def test_bad_value_in_toml_names_the_key_and_the_file(tmp_path: Path, line: str, key: str) -> None:
    path = _toml(tmp_path, f"[worker]\n{line}\n")
    err = _config_error(tmp_path)
    assert err.key == key and err.source == str(path)


@pytest.mark.parametrize("line", ["concurrency = [1]", "concurrency = 1979-05-27", "shutdown_timeout_s = [1]"])
def test_toml_array_or_date_for_a_number_is_a_config_error_naming_the_key(tmp_path: Path, line: str) -> None:
    _toml(tmp_path, f"[worker]\n{line}\n")
    err = _config_error(tmp_path)
    assert err.key.startswith("worker.")


def test_toml_float_for_an_integer_setting_is_a_config_error(tmp_path: Path) -> None:
    _toml(tmp_path, "[worker]\nconcurrency = 1.9\n")
    err = _config_error(tmp_path)
    assert err.key == "worker.concurrency"


def test_toml_integer_for_a_float_setting_is_accepted(tmp_path: Path) -> None:
    _toml(tmp_path, "[worker]\nshutdown_timeout_s = 5\n")
    assert load_settings(home=tmp_path, env={}).worker.shutdown_timeout_s == 5.0


def test_section_that_is_not_a_table_is_an_error(tmp_path: Path) -> None:
    _toml(tmp_path, 'worker = "x"\n')
    err = _config_error(tmp_path)
    assert err.key == "worker" and "table" in str(err)


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[worker\nconcurrency = \n")
    err = _config_error(tmp_path)
    assert str(path) in str(err) and err.source == str(path)


@pytest.mark.parametrize("name", ["RABBITRUN__ONLYONE", "RABBITRUN__A__B__C", "RABBITRUN__"])
def test_environment_name_that_is_not_section_and_key_is_an_error(tmp_path: Path, name: str) -> None:
    err = _config_error(tmp_path, {name: "1"}, read_file=False)
    assert err.key == name and err.source == "environment"
    assert "RABBITRUN__SECTION__KEY" in str(err)


@pytest.mark.parametrize(
    "env,key",
    [
        ({"RABBITRUN__WORKER__CONCURRENCY": "0"}, "worker.concurrency"),
        ({"RABBITRUN__BROKER__QUEUE_TYPE": "stream"}, "broker.queue_type"),
        ({"RABBITRUN__CORE__TASK_QUEUED_TIMEOUT_ACTION": "ignore"}, "core.task_queued_timeout_action"),
        ({"RABBITRUN__CORE__MAX_MAP_LENGTH": "0"}, "core.max_map_length"),
    ],
)
def test_values_outside_their_allowed_range_are_errors(tmp_path: Path, env: dict[str, str], key: str) -> None:
    assert _config_error(tmp_path, env, read_file=False).key == key


# --- secrets and masking ----------------------------------------------------------------


def test_secret_masks_itself_in_repr_but_keeps_its_value() -> None:
    secret = Secret("s3cr3t")
    assert repr(secret) == "'***'" and "s3cr3t" not in repr([secret])
    assert str(secret) == "s3cr3t" and secret == "s3cr3t" and f"{secret}" == "s3cr3t"
    assert repr(Secret("")) == "''"


def test_repr_of_settings_shows_no_password_or_fernet_key(tmp_path: Path) -> None:
    env = {
        "RABBITRUN__BROKER__URL": "amqp://u:brokerpw@h/",
        "RABBITRUN__CORE__FERNET_KEY": "fernetsecret",
        "RABBITRUN__DATABASE__URL": "postgresql://u:dbpw@h/db",
    }
    text = repr(load_settings(home=tmp_path, env=env, read_file=False))
    assert "brokerpw" not in text and "fernetsecret" not in text and "dbpw" not in text


def test_as_dict_masks_url_passwords_and_the_fernet_key(tmp_path: Path) -> None:
    env = {
        "RABBITRUN__BROKER__URL": "amqp://u:brokerpw@rabbit:5672/vh",
        "RABBITRUN__BROKER__MANAGEMENT_URL": "http://admin:mgmtpw@rabbit:15672/",
        "RABBITRUN__DATABASE__URL": "postgresql+psycopg://u:dbpw@db:5432/rr",
        "RABBITRUN__CORE__FERNET_KEY": "fernetsecret",
        "RABBITRUN__WORKER__QUEUES": "a,b",
        "RABBITRUN__CONTROL__SECRET_KEY": "controlsecret",
    }
    s = load_settings(home=tmp_path, env=env, read_file=False)
    shown = s.as_dict(masked=True)
    assert shown["control"]["secret_key"] == "***" and "controlsecret" not in repr(s)
    assert shown["broker"]["url"] == "amqp://u:***@rabbit:5672/vh"
    assert shown["broker"]["management_url"] == "http://admin:***@rabbit:15672/"
    assert shown["database"]["url"] == "postgresql+psycopg://u:***@db:5432/rr"
    assert shown["core"]["fernet_key"] == "***"
    assert shown["worker"]["queues"] == ["a", "b"]
    assert not any(pw in repr(shown) for pw in ("brokerpw", "mgmtpw", "dbpw", "fernetsecret"))
    assert set(shown) == {"core", "database", "broker", "logging", "scheduler", "worker", "metrics", "control"}


def test_as_dict_unmasked_shows_real_values_and_empty_secrets_stay_empty(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path, env={"RABBITRUN__BROKER__URL": "amqp://u:pw@h/"}, read_file=False)
    assert s.as_dict(masked=False)["broker"]["url"] == "amqp://u:pw@h/"
    assert s.as_dict(masked=True)["core"]["fernet_key"] == ""


@pytest.mark.parametrize(
    "url,expected",
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("postgresql+psycopg://u:p%40ss@db/rr?sslmode=require", "postgresql+psycopg://u:***@db/rr?sslmode=require"),
        ("amqp://user@host/vh", "amqp://user@host/vh"),
        ("amqp://host/", "amqp://host/"),
        ("sqlite:////tmp/rabbitrun.db", "sqlite:////tmp/rabbitrun.db"),
        ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("http://admin:a@b@mgmt:15672/api", "http://admin:***@mgmt:15672/api"),
        ("not a url", "not a url"),
    ],
)
def test_mask_url_replaces_only_the_password(url: str, expected: str) -> None:
    assert mask_url(url) == expected


def test_mask_url_keeps_ipv6_hosts_bracketed() -> None:
    assert mask_url("postgresql://u:secret@[::1]:5432/db") == "postgresql://u:***@[::1]:5432/db"


def test_mask_url_of_a_url_with_a_bad_port_still_masks_the_password() -> None:
    masked = mask_url("amqp://u:secret@host:notaport/")
    assert "secret" not in masked


@pytest.mark.parametrize("low,high", [("0", "30"), ("5", "1")])
def test_reconnect_backoff_bounds_must_be_positive_and_ordered(tmp_path: Path, low: str, high: str) -> None:
    err = _config_error(
        tmp_path, {"RABBITRUN__BROKER__RECONNECT_MIN_S": low, "RABBITRUN__BROKER__RECONNECT_MAX_S": high}
    )
    assert err.key == "broker.reconnect_min_s"


def test_the_removed_zombie_threshold_points_at_the_lease(tmp_path: Path) -> None:
    error = _config_error(tmp_path, {"RABBITRUN__SCHEDULER__ZOMBIE_THRESHOLD_S": "60"})
    assert error.key == "scheduler.zombie_threshold_s" and "[worker] lease_s" in str(error)


@pytest.mark.parametrize(("interval", "lease"), [("2", "3"), ("0", "10"), ("6", "10")])
def test_a_lease_shorter_than_two_renewals_is_refused(tmp_path: Path, interval: str, lease: str) -> None:
    env = {"RABBITRUN__WORKER__HEARTBEAT_INTERVAL_S": interval, "RABBITRUN__WORKER__LEASE_S": lease}
    assert _config_error(tmp_path, env).key == "worker.lease_s"


def test_max_infra_retries_cannot_be_negative(tmp_path: Path) -> None:
    error = _config_error(tmp_path, {"RABBITRUN__CORE__MAX_INFRA_RETRIES": "-1"})
    assert error.key == "core.max_infra_retries"
