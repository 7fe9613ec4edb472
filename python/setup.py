"""The wheel bundles a platform library (litestream_vfs.so, built by
../build.sh), so it is tagged for this platform, not as pure Python; it
does not depend on the Python ABI (py3-none-<platform>)."""

from setuptools import setup
from setuptools.dist import Distribution


class PlatformDistribution(Distribution):
    def has_ext_modules(self):
        return True  # installs into platlib: the wheel's root, not .data/purelib


try:
    from wheel.bdist_wheel import bdist_wheel

    class PlatformWheel(bdist_wheel):
        def finalize_options(self):
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self):
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass = {"bdist_wheel": PlatformWheel}
except ImportError:  # building an sdist without wheel
    cmdclass = {}

setup(cmdclass=cmdclass, distclass=PlatformDistribution)
