"""Data collection for lssvwm: real-env adapters (envs), scripted policies (policies), parallel
collection (collect, `lssvwm collect`), the dataset format (dataset, `lssvwm data`) and training
windows (windows). Importing this package is cheap; torch, mujoco and the envs load on use."""

from data_collection.dataset import Dataset, DatasetError, dataset_info, validate_dataset

__all__ = ["Dataset", "DatasetError", "dataset_info", "validate_dataset"]
