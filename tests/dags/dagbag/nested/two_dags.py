"""A file in a subfolder defining two DAGs, one of them under two names."""

from rabbitrun.authoring import DAG, BashOperator

first = DAG("test_nested_first")
BashOperator(task_id="a", bash_command="true", dag=first)
alias = first

second = DAG("test_nested_second")
BashOperator(task_id="b", bash_command="true", dag=second)
