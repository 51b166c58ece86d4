"""rabbitrun: Airflow-style DAGs, executed over RabbitMQ."""
