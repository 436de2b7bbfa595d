"""Package discovery (everything else is declared in setup.cfg).

Every package under ``recbole_hiertcn/`` and ``dataset_converters/`` is found, so a new
subpackage can never be left out of the wheel, and the top-level ``properties/`` folder (model
defaults, dataset presets, search spaces) is installed as ``recbole_hiertcn.properties``.
setup.cfg's ``packages = find:`` cannot add a package that lives outside its parent's folder.
"""

from setuptools import find_packages, setup

CODE = ["recbole_hiertcn", "recbole_hiertcn.*", "dataset_converters", "dataset_converters.*"]

setup(packages=find_packages(include=CODE) + ["recbole_hiertcn.properties"])
