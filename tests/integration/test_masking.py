"""Secrets never reach a task's log file, `rabbitrun tasks logs` or the recorded reason."""

from __future__ import annotations

from tests.support.env import Env
from tests.support.runs import queue_run, states
from tests.support.secrets import SECRET_URI, log_file, run_in_process

RAW_SECRETS = ("Pa55-w0rd-zz", "s3cr3t-value", "topsecret-xyz")


def test_printed_logged_and_raised_secrets_are_masked_in_the_log_file_cli_and_reason(env: Env) -> None:
    assert env.cli("variables", "set", "api_key", "s3cr3t-value").returncode == 0
    assert env.cli("connections", "add", "secret_db", "--conn-uri", SECRET_URI).returncode == 0
    run_id = queue_run(env, "secrets_dag")
    outcome = run_in_process(env, "secrets_dag", run_id, "leak")
    assert outcome.state == "failed"
    file_text = log_file(env, "secrets_dag", "leak", run_id).read_text()
    cli_text = env.cli("tasks", "logs", "secrets_dag", "leak", run_id).stdout
    reason = states(env, "secrets_dag", run_id)["leak"].reason or ""
    for text in (file_text, cli_text, outcome.error, reason):
        assert not [s for s in RAW_SECRETS if s in text], text
    assert "connecting with ***" in file_text  # print() of a connection password
    assert "api key is ***" in file_text and "via accessor: ***" in file_text  # a sensitive variable, logged
    assert "registered ***" in file_text  # mask_secret(...)
    assert "ValueError: failed with *** and ***" in file_text  # the exception message in the traceback
    assert "connecting with ***" in cli_text


def test_a_variable_that_is_not_sensitive_is_logged_as_it_is(env: Env) -> None:
    env.cli("variables", "set", "color", "blue")
    run_id = queue_run(env, "secrets_dag")
    assert run_in_process(env, "secrets_dag", run_id, "read_vars").state == "success"
    assert "***" not in log_file(env, "secrets_dag", "read_vars", run_id).read_text()
