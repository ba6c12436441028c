"""Builds the wheel of one LLVMEnzyme artifact (see build_recipes/wheel.py).

Environment (build_recipes/environment.py lists every variable of the recipes):
  ENZYME_RECIPES_ARTIFACTS  folder written by `python -m build_recipes build|repack --out`
                            (default: <repository>/out/artifacts)
  ENZYME_RECIPES_LLVM       LLVM major to pick when the folder holds several artifacts
  ENZYME_RECIPES_ROOT       the repository holding build_recipes/ and enzyme_artifacts/
                            (default: two folders above this file); read here directly,
                            since it says where build_recipes is
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("ENZYME_RECIPES_ROOT", "").strip() or HERE.parent.parent).resolve()
sys.path.insert(0, str(ROOT))

from build_recipes import environment
from build_recipes.wheel import ENTRY_POINT_GROUP, stage_wheel_tree

ARTIFACTS = environment.artifacts_dir() or ROOT / "out" / "artifacts"
STAGED = stage_wheel_tree(ARTIFACTS, HERE / "build" / "staging", llvm=environment.llvm_major())


class BinaryDistribution(Distribution):  # type: ignore[misc]
    """Carries a native library: installed to platlib, never treated as pure Python."""

    def has_ext_modules(self) -> bool:
        return True


class PlatformWheel(bdist_wheel):  # type: ignore[misc]
    """A wheel for any Python 3 on exactly the artifact's platform: py3-none-<tag>."""

    def get_tag(self) -> tuple[str, str, str]:
        return "py3", "none", STAGED.wheel_tag


setup(
    name=STAGED.distribution,
    version=STAGED.version,
    description=f"Enzyme's LLVM plugin {STAGED.key}, as a wheel",
    license="Apache-2.0 WITH LLVM-exception",
    packages=[STAGED.package],
    package_dir={STAGED.package: STAGED.package_dir.relative_to(HERE).as_posix()},
    package_data={STAGED.package: ["lib/*", "share/licenses/*", "Artifacts.toml"]},
    entry_points={ENTRY_POINT_GROUP: [STAGED.entry_point]},
    python_requires=">=3.8",
    zip_safe=False,
    distclass=BinaryDistribution,
    cmdclass={"bdist_wheel": PlatformWheel},
)
