"""The installed version of parag (read by the package and written into every saved store)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parag")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
