"""Built-in datasets: generic local folders (``imagefolder``, ``csv``)."""

from __future__ import annotations

from .. import hookimpl
from ..datasets import csv_dataset, imagefolder


@hookimpl
def register_datasets(register):
    register("imagefolder", imagefolder, "Your images, one folder per class (ROOT/<class>/<image>)")
    register("csv", csv_dataset, "Your images listed in a CSV with columns path,label")
