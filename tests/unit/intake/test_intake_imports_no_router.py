"""Intake runs without the router's code: it learns the directory from DirectoryPublished, and until the first one
from the file the router starts from, which it reads as data."""

import subprocess
import sys
from pathlib import Path

from services.intake import bootstrap
from services.router.domain.directory import DEMO_CITY

ROOT = Path(__file__).resolve().parents[3]
IMPORT_ALL = """
import importlib, pkgutil, sys
import services.intake
for module in pkgutil.walk_packages(services.intake.__path__, "services.intake."):
    if ".migrations" not in module.name:
        importlib.import_module(module.name)
print(sorted(name for name in sys.modules if name.startswith("services.") and not name.startswith("services.intake")))
"""


def test_no_module_of_intake_imports_another_service():
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_without_a_directory_file_intake_reads_the_one_the_router_starts_from():
    assert bootstrap.DEMO_DIRECTORY.resolve() == DEMO_CITY and bootstrap.DEMO_DIRECTORY.is_file()
