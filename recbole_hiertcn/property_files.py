"""Where the project's ``properties/`` files are, without importing RecBole."""

import os


def properties_dir():
    """The project's ``properties/`` folder: the installed copy inside the package (a wheel),
    else the checkout's (an editable install or a clone)."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    for candidate in (
        os.path.join(package_dir, "properties"),
        os.path.join(os.path.dirname(package_dir), "properties"),
    ):
        if os.path.isfile(os.path.join(candidate, "overall.yaml")):
            return candidate
    raise FileNotFoundError(f"recbole_hiertcn: no properties/ folder in or next to {package_dir}")


def model_yaml(model):
    """Path of the plugin's default config for ``model``, or None."""
    path = os.path.join(properties_dir(), "model", f"{model}.yaml")
    return path if os.path.isfile(path) else None


def dataset_yaml(dataset):
    """Path of the plugin's preset for ``dataset``, or None."""
    path = os.path.join(properties_dir(), "dataset", f"{dataset}.yaml")
    return path if os.path.isfile(path) else None
