"""Data quality with Great Expectations (runs in its own environment, `.venv-ge`; never
imported by Airflow or the trainer)."""
