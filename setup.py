"""Packaging of nml2lut (setuptools).

The version is read from ``nml2lut/_version.py`` without importing the package,
so building needs none of the run-time dependencies. The example channels are
installed inside the package as ``nml2lut/example_channels`` so that an
installed copy finds them as a source checkout does beside the package.
"""

import ast
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    """The string assigned to ``__version__`` in nml2lut/_version.py."""
    tree = ast.parse((HERE / "nml2lut" / "_version.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise RuntimeError("nml2lut/_version.py does not assign __version__")


setup(
    name="nml2lut",
    version=read_version(),
    description="NeuroML2 ion channels as fast Brian2 models with lookup tables",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    author="nml2lut developers",
    license_expression="BSD-3-Clause",
    license_files=["LICENSE"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Scientific/Engineering :: Bio-Informatics",
    ],
    keywords="NeuroML Brian2 ion channel lookup table Hodgkin-Huxley simulation",
    python_requires=">=3.12",
    packages=find_packages(include=["nml2lut", "nml2lut.*"]) + ["nml2lut.example_channels"],
    package_dir={"nml2lut.example_channels": "example_channels"},
    package_data={"nml2lut.example_channels": ["*.nml", "README.md"]},
    include_package_data=True,
    install_requires=[
        "brian2>=2.10",
        "numpy>=1.26",
        "lxml>=5",
        "libNeuroML>=0.6",
        "tqdm>=4.60",
        "matplotlib>=3.8",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6", "cython>=3", "pytest-xdist", "dask[distributed]"],
        "dask": ["dask[distributed]"],
    },
    entry_points={"console_scripts": ["nml2lut = nml2lut.cli:main"]},
    zip_safe=False,
)
