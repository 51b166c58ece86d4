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


def test_token_names_json_values_multiline_keys_and_sys_exit_are_masked(env: Env) -> None:
    """Issue 17 finding 4: none of these reach the log file, `tasks states` or the recorded reason."""
    import json

    pem = "-----BEGIN KEY-----\nAAAAline-one-secret\nBBBBline-two-secret\n-----END KEY-----"
    raw = ("xoxb-slack-123", "json-nested-pw", "AAAAline-one-secret", "BBBBline-two-secret")
    assert env.cli("variables", "set", "slack_token", "xoxb-slack-123").returncode == 0
    cfg = json.dumps({"db": {"host": "h", "password": "json-nested-pw"}})
    assert env.cli("variables", "set", "service_cfg", cfg).returncode == 0
    assert env.cli("variables", "set", "--", "ssh_private_key", pem).returncode == 0
    run_id = queue_run(env, "masking_gaps_dag")
    outcome = run_in_process(env, "masking_gaps_dag", run_id, "exit_with_secrets")
    assert outcome.state == "failed"
    file_text = log_file(env, "masking_gaps_dag", "exit_with_secrets", run_id).read_text()
    shown = env.cli("tasks", "states", "masking_gaps_dag", run_id)
    reason = states(env, "masking_gaps_dag", run_id)["exit_with_secrets"].reason or ""
    assert "SystemExit" in reason and "giving up with ***" in reason
    for text in (file_text, shown.stdout + shown.stderr, outcome.error, reason):
        assert not [s for s in raw if s in text], text
    assert "token ***" in file_text and "db password ***" in file_text and "key line ***" in file_text
