"""Hyperparameter tuning, as the managed service's tuning jobs do it: an objective the algorithm
reports, a search space checked against its hyperparameter table (`space`), and a study that
proposes trials and stops poor ones early (`study`, on Optuna), kept in a file that survives a
restarted task. Plain Python: the Airflow side runs it between rounds of training steps."""
