"""genmodels: classic generative models as a DVC + MLflow pipeline."""
