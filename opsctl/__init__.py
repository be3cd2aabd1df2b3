"""opsctl: inspection, monitoring and reporting for hospital and public-health systems."""

__version__ = "0.1.0"
