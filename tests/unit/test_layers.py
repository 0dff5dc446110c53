"""The rules that keep the layers apart, checked on the source's imports (tests/imports.py)."""

from __future__ import annotations

import sys

import pytest

from tests.imports import external_imports, import_graph, cycles, package_graph

GRAPH = import_graph()
IMPORTS = external_imports()
#: What the pure safety core may import besides itself: no I/O, no threads, no clock.
SAFETY_MAY_IMPORT = {"__future__", "dataclasses", "enum", "math", "typing", "collections",
                     "controller.config", "controller.fields"}
#: Where gpiozero's mock pins may appear: the simulated hardware and the simulation bench.
SIMULATION = ("hardware.sim", "sim")


def _top(name: str) -> str:
    return name.split(".")[0]


def _offending(source_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{module} imports {name}" for module, names in IMPORTS.items()
                  if module == source_prefix or module.startswith(source_prefix + ".")
                  for name in names if _top(name) in forbidden)


def test_the_import_graph_has_no_cycle_between_modules_or_packages():
    assert cycles(GRAPH) == []
    assert cycles(package_graph(GRAPH, 1)) == []
    assert cycles(package_graph(GRAPH, 2)) == []


def test_the_safety_core_imports_only_config_fields_and_pure_stdlib():
    offending = []
    for module, names in IMPORTS.items():
        if not module.startswith("controller.safety"):
            continue
        for name in names:
            allowed = name.startswith("controller.safety") or any(
                name == ok or name.startswith(ok + ".") for ok in SAFETY_MAY_IMPORT)
            if not allowed:
                offending.append(f"{module} imports {name}")
    assert offending == []


def test_the_controller_never_imports_the_dashboard_the_clinic_record_the_simulation_the_command_or_tests():
    """The safety loop never waits on the network: the clinic record is another process's business."""
    assert _offending("controller", ("web", "voice", "clinic", "sim", "cli", "tests")) == []


def test_hardware_never_imports_the_controller_the_dashboard_or_the_simulation_bench():
    assert _offending("hardware", ("controller", "web", "sim", "cli", "tests")) == []


def test_the_dashboard_never_imports_hardware_the_simulation_or_the_command():
    assert _offending("web", ("hardware", "sim", "cli", "tests")) == []


def test_the_voice_never_imports_hardware_the_dashboard_the_simulation_or_the_command():
    """The voice is a client of the controller's socket, like the dashboard, and knows nothing else."""
    assert _offending("voice", ("hardware", "web", "sim", "cli", "tests")) == []


def test_the_clinic_record_never_imports_the_dashboard_hardware_the_simulation_the_voice_or_the_command():
    """clinic/ reads the controller's data definitions and PostgreSQL; the dashboard may read it, not the reverse."""
    assert _offending("clinic", ("web", "hardware", "sim", "cli", "voice", "tests")) == []


def test_the_catalog_reader_imports_nothing_of_ours():
    """i18n/ is read by the dashboard and the voice alike: it stands below both."""
    assert _offending("i18n", ("controller", "hardware", "web", "voice", "clinic", "sim", "cli", "tests")) == []


def test_nothing_imports_the_command_or_tests_and_mock_pins_stay_in_the_simulation():
    offending = []
    for module, names in IMPORTS.items():
        for name in names:
            if _top(name) == "tests" or (_top(name) == "cli" and _top(module) != "cli"):
                offending.append(f"{module} imports {name}")
            in_simulation = any(module == s or module.startswith(s + ".") for s in SIMULATION)
            if name.startswith("gpiozero.pins.mock") and not in_simulation:
                offending.append(f"{module} imports {name}")
    assert offending == []


@pytest.mark.parametrize("package", ["controller", "controller.safety", "controller.therapy",
                                     "controller.storage", "controller.doctor", "sim", "cli", "i18n", "voice",
                                     "clinic"])
def test_each_package_says_what_it_owns(package):
    __import__(package)
    doc = sys.modules[package].__doc__
    assert doc and len(doc.strip()) > 40, f"{package} has no docstring saying what it owns"


def test_the_rules_see_the_whole_product():
    """A rule checked on an empty graph passes whatever the code does."""
    assert {"controller.safety.core", "controller.loop", "hardware.io", "web.api", "voice.service", "i18n",
            "sim.bench", "cli.main", "clinic.schema", "clinic.connect"} <= GRAPH.keys()
    assert "controller.config" in GRAPH["controller.safety.core"]


def test_the_safety_cores_copy_of_the_sensor_encoding_agrees_with_hardware():
    """The core may not import hardware/vl53l0x_regs.py, so its two constants are checked against it."""
    from controller.safety import inputs
    from hardware import vl53l0x_regs
    assert inputs.RANGE_STATUS_VALID == vl53l0x_regs.RANGE_STATUS_VALID
    assert inputs.NO_TARGET_MM == vl53l0x_regs.NO_TARGET_VALUES_MM
