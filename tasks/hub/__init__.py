"""Pre-trained TF Hub models for image-classification-tf, offline: the registry of model ids
(`models.json`, data) and where a model's files are found (a hub cache or a mirror).

Nothing here imports TensorFlow: the Airflow side stages models with it, and
`python -m tasks.hub list|mirror|package` runs anywhere.
"""
