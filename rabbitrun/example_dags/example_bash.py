"""example_bash: two BashOperators in sequence, the second reading a value from its env."""

from __future__ import annotations

from rabbitrun.authoring import DAG, BashOperator

with DAG("example_bash", schedule=None, description="bash in sequence", tags=["example"]) as dag:
    hello = BashOperator(task_id="hello", bash_command="echo hello from $(hostname)")
    # values from outside (dag_run.conf, params) go through env=, never into bash_command's text:
    # the shell reads "$GREETING_NAME" as data; `{{ x | shell_quote }}` is there when text is a must
    greet = BashOperator(
        task_id="greet",
        bash_command='echo "greetings, $GREETING_NAME"',
        env={"GREETING_NAME": "rabbitrun"},
    )
    hello >> greet
